// classic PHP through a pretty URL, as most of a WordPress site's pages are asked for: the path
// names no file, so try_files falls back to /index.php (the one echo script again). Measures what
// deciding that costs on top of classic-hello: nginx stats the path, warmpool resolves it.
export default {
  name: 'classic-pretty',
  about: 'classic PHP: a pretty URL through try_files to index.php (WordPress permalinks)',
  classic: { app: 'front' },
  request: { path: '/blog/hello-world/' },
  expect: { status: 200, body: 'Hello' },
};
