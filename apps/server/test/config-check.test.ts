import { parseConfig, toServerOptions } from '@warmpool/config';
import { describe, expect, it } from 'vitest';
import { effectiveConfig } from '../src/commands/config-check.js';

function effective(yaml: string) {
  const loaded = parseConfig(yaml, { file: '/tmp/warmpool-check.yaml', env: {} });
  return effectiveConfig(loaded, toServerOptions(loaded)) as {
    listeners: { http: Record<string, unknown> };
    sites: Array<{ name: string; http: Record<string, unknown> }>;
  };
}

describe('config check: the effective config', () => {
  it('shows the configured listener values, not the defaults', () => {
    const { listeners } = effective(`version: "3"
server:
  command: php worker.php
http:
  address: 127.0.0.1:8080
  access_logs: true
  max_header_size: 32768
  headers_timeout: 5s
  trusted_subnets: [10.0.0.0/8]
`);
    expect(listeners.http).toMatchObject({
      address: '127.0.0.1:8080',
      serves: 'HTTP/1.1',
      access_logs: true,
      max_header_size: 32768,
      headers_timeout: '5s',
      // unset: none, as nginx; body_timeout (nginx's client_body_timeout) cuts a client gone silent
      request_timeout: '0',
      body_timeout: '60s',
      trusted_subnets: ['10.0.0.0/8'],
      max_connections: 0,
      max_connections_per_ip: 0,
    });
  });

  it('shows the connection and memory limits as configured: an operator checks that the DoS limits took', () => {
    const { listeners } = effective(`version: "3"
server:
  command: php worker.php
http:
  address: 127.0.0.1:8080
  max_connections: 4000
  max_connections_per_ip: 32
  send_timeout: 20s
  max_response_memory: 32m
`);
    expect(listeners.http).toMatchObject({
      max_connections: 4000,
      max_connections_per_ip: 32,
      send_timeout: '20s',
      max_response_memory: 33554432,
    });
  });

  it('shows max_request_size and raw_body per site (they are per-site keys), as configured', () => {
    const { listeners, sites } = effective(`version: "3"
server:
  command: php worker.php
http:
  address: 127.0.0.1:8080
  max_request_size: 7
  raw_body: true
sites:
  - hosts: [a.test]
    http:
      max_request_size: 2
`);
    expect(listeners.http).not.toHaveProperty('max_request_size');
    expect(listeners.http).not.toHaveProperty('raw_body');
    expect(sites.map((site) => [site.name, site.http.max_request_size, site.http.raw_body])).toEqual([
      ['a.test', 2, true],
      ['default', 7, true],
    ]);
  });

  it("shows exec_ttl in use: none on a classic site unless set, with its 60 s silence limit (nginx's fastcgi_read_timeout); a worker site's 0s", () => {
    const { sites } = effective(`version: "3"
server:
  command: php worker.php
http:
  address: 127.0.0.1:8080
sites:
  - hosts: [classic.test]
    fastcgi: { root: /var/www }
  - hosts: [set.test]
    fastcgi: { root: /var/www }
    http: { pool: { supervisor: { exec_ttl: 5s } } }
`);
    const execTtl = (site: { http: Record<string, unknown> }) =>
      (site.http.pool as { supervisor: { exec_ttl: unknown } }).supervisor.exec_ttl;
    expect(sites.map((site) => [site.name, execTtl(site)])).toEqual([
      ['classic.test', '0s (60s of silence from PHP: 504)'],
      ['set.test', '5s'],
      ['default', '0s'],
    ]);
  });

  it('shows allocate_timeout: 0 as what the pool applies (RoadRunner: 0 is the default), not 0s', () => {
    const { sites } = effective(`version: "3"
server: { command: php w.php }
http:
  address: 127.0.0.1:8080
  pool: { allocate_timeout: 0, destroy_timeout: 0s, reset_timeout: 0 }
`);
    expect(sites[0]!.http.pool).toMatchObject({
      allocate_timeout: '60s',
      destroy_timeout: '60s',
      reset_timeout: '60s',
    });
  });

  it('shows no num_workers for a dynamic pool (min_workers/max_workers size it), a fixed pool its default', () => {
    const { sites } = effective(`version: "3"
http:
  address: 127.0.0.1:8080
sites:
  - hosts: [dynamic.test]
    fastcgi: { root: /var/www }
    http: { pool: { min_workers: 0, max_workers: 4 } }
  - hosts: [fixed.test]
    fastcgi: { root: /var/www }
`);
    const [dynamic, fixed] = sites.map((site) => site.http.pool as Record<string, unknown>);
    expect(dynamic).not.toHaveProperty('num_workers');
    expect(dynamic).toMatchObject({ min_workers: 0, max_workers: 4 });
    expect(fixed).toHaveProperty('num_workers');
  });

  it('shows a fastcgi.pass site only the pool keys that apply to php-fpm, not the process defaults', () => {
    const { sites } = effective(`version: "3"
http:
  address: 127.0.0.1:8080
  pool: { num_workers: 4, max_jobs: 500, allocate_timeout: 5s }
sites:
  - hosts: [fpm.test]
    fastcgi: { root: /var/www, pass: 127.0.0.1:9000 }
  - hosts: [queue.test]
    fastcgi: { root: /var/www, pass: unix:/run/php/php8.2-fpm.sock }
    http: { pool: { max_queue_size: 50, supervisor: { exec_ttl: 30s, ttl: 1h } } }
  - hosts: [cgi.test]
    fastcgi: { root: /var/www }
`);
    const [fpm, queue, cgi] = sites.map((site) => site.http.pool as Record<string, unknown>);
    // php-fpm's pm.* settings size and recycle its processes: no num_workers: 2 (or the inherited 4)
    expect(fpm).toEqual({
      debug: false,
      allocate_timeout: '5s',
      max_queue_size: '16 per connection',
      send_timeout: '60s',
      // no exec_ttl: a script may run as long as it writes; 60 s of silence is a 504 (it said "60s")
      supervisor: { exec_ttl: '0s (60s of silence from PHP: 504)' },
    });
    expect(queue).toMatchObject({ max_queue_size: 50, supervisor: { exec_ttl: '30s' } });
    expect(queue!.supervisor).not.toHaveProperty('ttl');
    // managed php-cgi: the pool runs the processes, every key applies
    expect(cgi).toMatchObject({ num_workers: 4, max_jobs: 500, max_queue_size: '16 per worker' });
    expect(cgi!.supervisor).toMatchObject({
      ttl: '0s',
      max_worker_memory: 0,
      exec_ttl: '0s (60s of silence from PHP: 504)',
    });
  });

  it('shows a classic site what applies to it: no worker command, relay or codec, and its static layer over fastcgi.root', () => {
    const { sites } = effective(`version: "3"
server:
  command: php worker.php
  env: { APP_ENV: prod }
  user: "33"
  group: "33"
http:
  address: 127.0.0.1:8080
sites:
  - hosts: [cgi.test]
    fastcgi: { root: /var/www/html }
  - hosts: [fpm.test]
    fastcgi: { root: /srv/fpm, pass: 127.0.0.1:9000 }
`);
    const [cgi, fpm, worker] = sites as unknown as Array<{
      server: Record<string, unknown>;
      http: Record<string, unknown>;
    }>;
    // managed php-cgi: server.env and the user reach it; its command is fastcgi.command
    expect(cgi!.server).toEqual({ env: { APP_ENV: 'prod' }, user: '33', group: '33' });
    // php-fpm's processes, environment and user are its own
    expect(fpm!.server).toEqual({});
    for (const site of [cgi!, fpm!]) expect(site.http).not.toHaveProperty('codec');
    // a classic site always serves its static files (it showed static: null without http.static)
    expect(cgi!.http.static).toMatchObject({ dir: '/var/www/html', calculate_etag: true });
    expect(fpm!.http.static).toMatchObject({ dir: '/srv/fpm' });
    // static.try_files is a site of no PHP's: no default shown where PHP is the fallback
    expect(cgi!.http.static).not.toHaveProperty('try_files');
    // the worker site (the default one) as before
    expect(worker!.server).toMatchObject({ command: 'php worker.php', relay: 'pipes' });
    expect(worker!.http).toMatchObject({ codec: expect.any(String), static: null });
  });

  it("shows idle_ttl in use: a dynamic pool's scale-down delay (60s) unless set, a fixed pool's 0s", () => {
    const { sites } = effective(`version: "3"
server:
  command: php worker.php
http:
  address: 127.0.0.1:8080
sites:
  - hosts: [dynamic.test]
    http: { pool: { min_workers: 0, max_workers: 4 } }
  - hosts: [set.test]
    http: { pool: { min_workers: 0, max_workers: 4, supervisor: { idle_ttl: 5s } } }
`);
    const idleTtl = (site: { http: Record<string, unknown> }) =>
      (site.http.pool as { supervisor: { idle_ttl: unknown } }).supervisor.idle_ttl;
    expect(sites.map((site) => [site.name, idleTtl(site)])).toEqual([
      ['dynamic.test', '60s'],
      ['set.test', '5s'],
      ['default', '0s'],
    ]);
  });

  it("shows each site's cache (defaults filled in) and proxy routes", () => {
    const { sites } = effective(`version: "3"
server:
  command: php worker.php
http:
  address: 127.0.0.1:8080
cache:
  enabled: true
proxy:
  - prefix: /api
    upstream: http://127.0.0.1:9000
sites:
  - hosts: [a.test]
    cache:
      enabled: false
    proxy: []
`) as unknown as { sites: Array<{ name: string; cache: Record<string, unknown> | null; proxy: unknown[] }> };
    const [a, top] = sites;
    expect(a!.cache).toBeNull();
    expect(a!.proxy).toEqual([]);
    expect(top!.cache).toMatchObject({ enabled: true, max_bytes: 64 * 1024 * 1024, stale_while_revalidate: '0s' });
    expect(top!.cache!.bypass_cookies).toContain('PHPSESSID');
    expect(top!.proxy).toEqual([{ prefix: '/api', upstream: 'http://127.0.0.1:9000', websocket: false }]);
  });
});

describe('config check: what a site setup would refuse', () => {
  it("names the headers keys serve's boot would refuse, at their line (http.headers.hide)", async () => {
    const { checkSites } = await import('../src/app.js');
    const loaded = parseConfig(
      `version: "3"
http:
  address: 127.0.0.1:8080
  middleware: [headers]
  headers:
    response: { X-Frame-Options: DENY }
    hide: [Server, Content-Length, x-frame-options]
proxy: [{ prefix: /, upstream: "http://127.0.0.1:9000" }]
sites:
  - hosts: [a.test]
    php: false
`,
      { file: '/tmp/warmpool-check.yaml', env: {} },
    );
    const problems = checkSites(toServerOptions(loaded), loaded);
    expect(problems?.errors.map((e) => [e.line, e.key, e.reason])).toEqual([
      [7, 'http.headers.hide[1]', 'Content-Length frames the body: the client could not read it'],
    ]);
  });
});
