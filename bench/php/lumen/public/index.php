<?php
// The php-fpm / php -S front controller: the normal Lumen public/index.php (bootstrap per request).
declare(strict_types=1);

if ((parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/') === '/__bench/info') {
    require __DIR__ . '/../../info.php';
    header('Content-Type: application/json');
    echo json_encode(bench_info());
    return;
}
$app = require __DIR__ . '/../bootstrap/app.php';
$app->run();
