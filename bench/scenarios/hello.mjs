// hello world: PHP echoes "Hello". Measures the per-request overhead of each way of running PHP.
export default {
  name: 'hello',
  about: 'PHP echoes "Hello"',
  worker: 'worker.php',
  handler: 'handlers/hello.php',
  request: { path: '/hello' },
  expect: { status: 200, body: 'Hello' },
};
