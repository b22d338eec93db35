<?php
// hello world: the smallest possible PHP answer.
declare(strict_types=1);

function bench_handle(string $method, string $path, string $body): array
{
    return [200, ['Content-Type' => 'text/plain'], 'Hello'];
}
