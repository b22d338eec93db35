// classic PHP, the smallest request: GET /hello.php runs one echo script, a fresh request state
// each time. Measures what each way of running classic PHP costs per request.
export default {
  name: 'classic-hello',
  about: 'classic PHP: one echo script (hello.php)',
  classic: { app: 'hello' },
  request: { path: '/hello.php' },
  expect: { status: 200, body: 'Hello' },
};
