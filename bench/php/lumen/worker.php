<?php
// The warmpool worker loop for Lumen: the app boots once, then each request becomes an
// Illuminate\Http\Request handed to $app->handle(); the Symfony response goes back to warmpool.
// A benchmark loop, not a template for an app: it passes no form fields or uploads and resets
// nothing between requests (auth guards keep the last user). docs/CLASSIC.md, "Turning a classic
// app into a worker app", says what an app's loop needs.
declare(strict_types=1);

require __DIR__ . '/../../../packages/php-worker/src/autoload.php';
require __DIR__ . '/../info.php';

$http = Warmpool\HttpWorker::create();
$app = require __DIR__ . '/bootstrap/app.php';

while (true) {
    try {
        $request = $http->waitRequest();
        if ($request === null) {
            break;
        }
    } catch (Warmpool\Http\BadRequestException $e) {
        $http->respond(400, 'Bad Request');
        continue;
    }
    try {
        if ($request->path() === '/__bench/info') {
            $http->respond(200, json_encode(bench_info()), ['Content-Type' => 'application/json']);
            continue;
        }
        $server = ['REMOTE_ADDR' => $request->remoteAddr, 'SERVER_PROTOCOL' => $request->protocol];
        foreach ($request->headers as $name => $values) {
            $key = strtoupper(str_replace('-', '_', $name));
            $server[in_array($key, ['CONTENT_TYPE', 'CONTENT_LENGTH'], true) ? $key : "HTTP_$key"] = implode(', ', $values);
        }
        $illuminate = Illuminate\Http\Request::create($request->uri, $request->method, [], $request->cookies, [], $server, $request->body);
        $response = $app->handle($illuminate);
        $headers = $response->headers->allPreserveCaseWithoutCookies();
        $cookies = [];
        foreach ($response->headers->getCookies() as $cookie) {
            $cookies[] = (string)$cookie;
        }
        if ($cookies !== []) {
            $headers['Set-Cookie'] = $cookies;
        }
        $http->respond($response->getStatusCode(), (string)$response->getContent(), $headers);
    } catch (\Throwable $e) {
        $http->error((string)$e);
    }
}
