<?php

declare(strict_types=1);

// For use without Composer: require this file to load the Warmpool\ classes.
\spl_autoload_register(static function (string $class): void {
    if (\str_starts_with($class, 'Warmpool\\')) {
        $file = __DIR__ . '/' . \str_replace('\\', '/', \substr($class, 9)) . '.php';
        if (\is_file($file)) {
            require $file;
        }
    }
});
