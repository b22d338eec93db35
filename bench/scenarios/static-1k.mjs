// A static 1 KB file: warmpool's `static` option (the file is served before PHP) vs nginx.
export default {
  name: 'static-1k',
  about: 'a 1 KB file (plugin static option vs nginx)',
  worker: 'worker.php',
  handler: 'handlers/static.php',
  static: { file: 'file-1k.txt', bytes: 1024 },
  request: { path: '/file-1k.txt' },
  expect: { status: 200, length: 1024 },
};
