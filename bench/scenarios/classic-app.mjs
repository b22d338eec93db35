// classic PHP, a real app: Debian's DokuWiki renders its "wiki:syntax" page (doku.php, its page
// cache warm after the first request), as nginx + php-fpm serves it on a VPS.
export default {
  name: 'classic-app',
  about: "classic PHP: a DokuWiki page (Debian's dokuwiki)",
  classic: { app: 'dokuwiki' },
  request: { path: '/doku.php?id=wiki:syntax' },
  expect: { status: 200, includes: 'Formatting Syntax' },
};
