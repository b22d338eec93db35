<?php
// A 1 MB upload (raw application/octet-stream body): PHP reads it all and answers its size.
declare(strict_types=1);

function bench_handle(string $method, string $path, string $body): array
{
    return [200, ['Content-Type' => 'text/plain'], 'received ' . strlen($body) . " bytes\n"];
}
