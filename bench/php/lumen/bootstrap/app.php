<?php
// A minimal Lumen 8 app on Debian's php-laravel-lumen-framework (no Composer):
// - the autoloader is /usr/share/php/Laravel/Lumen/autoload.php and uses relative requires, so
//   /usr/share/php must be on include_path (bench.ini sets it; this line makes it certain);
// - Debian ships no config/ for Lumen, so config/app.php is ours;
// - Lumen needs mbstring (php-mbstring).
declare(strict_types=1);

set_include_path('/usr/share/php' . PATH_SEPARATOR . get_include_path());
require_once 'Laravel/Lumen/autoload.php';

$app = new Laravel\Lumen\Application(dirname(__DIR__));
$app->useStoragePath(sys_get_temp_dir() . '/warmpool-bench-lumen-storage');
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, Laravel\Lumen\Exceptions\Handler::class);
$app->singleton(Illuminate\Contracts\Console\Kernel::class, Laravel\Lumen\Console\Kernel::class);
$app->configure('app');

// One JSON route, a little like a real API endpoint: reads the query, builds a small document.
$app->router->get('/lumen', function (Illuminate\Http\Request $request) {
    $items = [];
    for ($i = 1; $i <= 10; $i++) {
        $items[] = ['id' => $i, 'name' => "item $i", 'price' => $i * 1.5];
    }
    return response()->json([
        'framework' => 'lumen',
        'greeting' => 'Hello ' . $request->query('name', 'world'),
        'items' => $items,
    ]);
});

return $app;
