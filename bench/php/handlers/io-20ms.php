<?php
// 20 ms of blocking I/O per request (a slow database or API call): usleep holds the worker.
declare(strict_types=1);

function bench_handle(string $method, string $path, string $body): array
{
    usleep(20000);
    return [200, ['Content-Type' => 'text/plain'], "slept 20ms\n"];
}
