<?php
// The PHP side: a warm worker loop with the warmpool SDK's HttpWorker.
declare(strict_types=1);

require __DIR__ . '/../../packages/php-worker/src/autoload.php';

$http = Warmpool\HttpWorker::create();
$hits = 0;
while ($request = $http->waitRequest()) {
    try {
        $hits++;
        $http->respond(200, json_encode([
            'servedBy' => 'php',
            'path' => $request->path(),
            'query' => $request->query,
            'hits' => $hits,
            'pid' => getmypid(),
        ]), ['Content-Type' => 'application/json']);
    } catch (Throwable $e) {
        $http->error((string)$e);
    }
}
