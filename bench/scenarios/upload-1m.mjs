// A 1 MB upload: wrk POSTs a 1 MiB application/octet-stream body (wrk/report.lua); PHP reads it
// whole and answers its size.
export default {
  name: 'upload-1m',
  about: 'POST of a 1 MiB body, PHP answers its size',
  worker: 'worker.php',
  handler: 'handlers/upload.php',
  request: { path: '/upload', method: 'POST', bodyBytes: 1048576, contentType: 'application/octet-stream' },
  expect: { status: 200, body: 'received 1048576 bytes\n' },
};
