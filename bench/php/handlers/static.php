<?php
// Static scenarios: the file is served before PHP; PHP only answers paths that are not files.
declare(strict_types=1);

function bench_handle(string $method, string $path, string $body): array
{
    return [404, ['Content-Type' => 'text/plain'], "not a static file: $path\n"];
}
