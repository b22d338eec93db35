<?php
// /__bench-info.php in a classic scenario's docroot: the same proof of php.ini, opcache and JIT as
// /__bench/info gives for the worker scenarios.
declare(strict_types=1);

require BENCH_INFO;
header('Content-Type: application/json');
echo json_encode(bench_info());
