<?php
// A 1 MB response body built per request.
declare(strict_types=1);

function bench_handle(string $method, string $path, string $body): array
{
    return [200, ['Content-Type' => 'application/octet-stream'], str_repeat('x', 1048576)];
}
