// hello world with the static layer on, as a framework app runs (its public/ folder served first):
// GET /hello names no file, so each request is looked up on disk before PHP echoes "Hello"
// (nginx: try_files $uri @php). Measures what that miss costs on top of hello.
export default {
  name: 'hello-static',
  about: 'PHP echoes "Hello" behind the static layer (a miss first, as try_files $uri @php)',
  worker: 'worker.php',
  handler: 'handlers/hello.php',
  static: { file: 'file-1k.txt', bytes: 1024 },
  request: { path: '/hello' },
  expect: { status: 200, body: 'Hello' },
};
