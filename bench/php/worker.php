<?php
// The warm worker loop used by the warmpool contenders (plugin, server, floor):
//   php -c bench.ini worker.php <handler.php>
// The handler file runs once per worker (its bootstrap is the point of a warm worker); then each
// request calls bench_handle(), the same function the php-fpm / php -S front controller calls.
declare(strict_types=1);

require __DIR__ . '/../../packages/php-worker/src/autoload.php';
require __DIR__ . '/info.php';

$http = Warmpool\HttpWorker::create();
require $argv[1];

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
        $path = $request->path();
        if ($path === '/__bench/info') {
            $http->respond(200, json_encode(bench_info()), ['Content-Type' => 'application/json']);
            continue;
        }
        [$status, $headers, $body] = bench_handle($request->method, $path, $request->body);
        $http->respond($status, $body, $headers);
    } catch (\Throwable $e) {
        $http->error((string)$e);
    }
}
