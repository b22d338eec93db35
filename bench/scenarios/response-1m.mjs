// A 1 MB response: PHP builds a 1 MiB body per request.
export default {
  name: 'response-1m',
  about: 'PHP answers a 1 MiB body',
  worker: 'worker.php',
  handler: 'handlers/response-1m.php',
  request: { path: '/big' },
  expect: { status: 200, length: 1048576 },
};
