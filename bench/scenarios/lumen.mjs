// A real framework app: Lumen 8 (Debian's php-laravel-lumen-framework), one JSON route. warmpool
// boots the app once per worker; php-fpm boots it on every request (the normal public/index.php).
export default {
  name: 'lumen',
  about: 'Lumen 8, one JSON route',
  worker: 'lumen/worker.php',
  front: 'lumen/public/index.php',
  request: { path: '/lumen?name=bench' },
  expect: { status: 200, includes: '"greeting":"Hello bench"' },
};
