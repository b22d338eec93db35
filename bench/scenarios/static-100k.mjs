// A static 100 KB file: warmpool's `static` option vs nginx (sendfile).
export default {
  name: 'static-100k',
  about: 'a 100 KB file (plugin static option vs nginx)',
  worker: 'worker.php',
  handler: 'handlers/static.php',
  static: { file: 'file-100k.txt', bytes: 102400 },
  request: { path: '/file-100k.txt' },
  expect: { status: 200, length: 102400 },
};
