<?php
// The front controller used by php-fpm and php -S: the generated docroot/index.php defines
// BENCH_HANDLER and requires this file. Everything (handler bootstrap included) runs per request,
// which is the php-fpm model the benchmark compares against.
declare(strict_types=1);

require __DIR__ . '/info.php';
require BENCH_HANDLER;

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
if ($path === '/__bench/info') {
    header('Content-Type: application/json');
    echo json_encode(bench_info());
    return;
}
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
$body = $method === 'POST' || $method === 'PUT' ? (string)file_get_contents('php://input') : '';
[$status, $headers, $out] = bench_handle($method, $path, $body);
http_response_code($status);
foreach ($headers as $name => $value) {
    header("$name: $value");
}
echo $out;
