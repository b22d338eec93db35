<?php
// GET /__bench/info on every contender: proves which php.ini each PHP really runs with (opcache, JIT),
// so the harness can refuse to compare an opcache-on contender against an opcache-off one.
declare(strict_types=1);

function bench_info(): array
{
    $status = function_exists('opcache_get_status') ? @opcache_get_status(false) : false;
    return [
        'sapi' => PHP_SAPI,
        'php' => PHP_VERSION,
        'opcache' => is_array($status) && !empty($status['opcache_enabled']),
        'jit' => is_array($status) && !empty($status['jit']['on']),
        'validate_timestamps' => ini_get('opcache.validate_timestamps'),
        'ini' => php_ini_loaded_file(),
        'scanned' => php_ini_scanned_files(),
        'pid' => getmypid(),
    ];
}
