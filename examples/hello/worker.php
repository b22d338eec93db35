<?php
// The example PHP app: one warm worker loop serving a small page. $count lives across requests,
// which is the point of a warm worker: the bootstrap runs once, not per request.
declare(strict_types=1);

require __DIR__ . '/../../packages/php-worker/src/autoload.php';

use Warmpool\Frame;
use Warmpool\Payload;
use Warmpool\Worker;

$worker = Worker::create();
$count = 0;
$bootedAt = date('H:i:s');

while ($payload = $worker->waitPayload()) {
    $count++;
    $request = json_decode($payload->context, true);
    $url = parse_url($request['uri']);
    parse_str($request['rawQuery'] ?? '', $query);
    $h = fn($v) => htmlspecialchars((string)$v, ENT_QUOTES);
    $rows = '';
    foreach ($query as $k => $v) {
        $rows .= '<li><code>' . $h($k) . '</code> = <code>' . $h(is_array($v) ? json_encode($v) : $v) . '</code></li>';
    }
    $html = <<<HTML
    <!doctype html>
    <html lang="en">
    <head><meta charset="utf-8"><title>warmpool hello</title><link rel="stylesheet" href="/style.css"></head>
    <body>
      <h1>Hello from a warm PHP worker</h1>
      <p>This worker (pid <strong id="pid">{$h(getmypid())}</strong>, booted at {$bootedAt}) has served
         <strong id="count">{$count}</strong> request(s). Reload: the counter goes up because the process stays warm.</p>
      <table>
        <tr><th>method</th><td id="method">{$h($request['method'])}</td></tr>
        <tr><th>path</th><td id="path">{$h($url['path'] ?? '/')}</td></tr>
        <tr><th>query</th><td><ul>{$rows}</ul></td></tr>
        <tr><th>PHP</th><td>{$h(PHP_VERSION)}</td></tr>
      </table>
      <p><img src="/logo.svg" alt="" width="48" height="48"> Static files come from <code>public/</code>.</p>
    </body>
    </html>
    HTML;
    $context = json_encode(['status' => 200, 'headers' => ['Content-Type' => ['text/html; charset=utf-8'], 'X-Worker-Pid' => [(string)getmypid()]]]);
    $worker->respond(new Payload($context, $html, Frame::CODEC_JSON));
}
