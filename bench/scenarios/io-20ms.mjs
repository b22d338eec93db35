// 20 ms of blocking I/O per request (usleep(20000)): workers sit idle waiting, so every contender
// gets 16 PHP workers (a ceiling of 800 rps), unless --workers-io says otherwise.
export default {
  name: 'io-20ms',
  about: 'usleep(20000) per request, 16 workers',
  worker: 'worker.php',
  handler: 'handlers/io-20ms.php',
  workers: (flags) => flags.workersIo,
  request: { path: '/io' },
  expect: { status: 200, body: 'slept 20ms\n' },
};
