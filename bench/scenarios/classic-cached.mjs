// classic PHP behind the micro-cache with compression, as a busy anonymous WordPress page is served:
// GET /page.php (240 KB of HTML PHP marks public for a minute), gzip asked for. nginx: fastcgi_cache
// and gzip on (its defaults: level 1); warmpool: cache.enabled and the gzip middleware. After the
// first request PHP is not asked again: this measures serving a cached page, compressed.
export default {
  name: 'classic-cached',
  about: 'classic PHP, cached: a 240 KB page PHP marks public, served from the cache with gzip',
  classic: { app: 'cached' },
  cache: true,
  request: { path: '/page.php', acceptEncoding: 'gzip' },
  expect: { status: 200, includes: '<p class="post">', encoding: 'gzip' },
};
