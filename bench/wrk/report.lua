-- Loaded by every wrk run (wrk -s report.lua). wrk counts a non-2xx reply as a success in its
-- headline figures; done() prints the status errors (HTTP >= 400) and socket errors next to them,
-- as one JSON line the harness parses. No response() callback: defining one makes wrk hand every
-- header and body to Lua, which would slow the client down (badly for the 1 MB scenarios).
--
-- Environment (set by the harness):
--   WRK_METHOD        GET (default) or POST
--   WRK_BODY_BYTES    size of the request body to send (built once, e.g. 1048576 for the upload)
--   WRK_CONTENT_TYPE  Content-Type of that body
--   WRK_ACCEPT_ENCODING  the Accept-Encoding to send (none when empty)

local method = os.getenv("WRK_METHOD")
if method ~= nil and method ~= "" then wrk.method = method end
local bytes = tonumber(os.getenv("WRK_BODY_BYTES") or "0")
if bytes > 0 then
  wrk.body = string.rep("x", bytes)
  wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/octet-stream"
end

local accept = os.getenv("WRK_ACCEPT_ENCODING")
if accept ~= nil and accept ~= "" then wrk.headers["Accept-Encoding"] = accept end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
