// The contenders: how each one is started on 127.0.0.1 with private config files under the run's
// temp dir. start() returns the process-group leaders to stop afterwards, the root pids whose
// process trees are measured (RSS), and the Node pid when there is one.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnGroup } from './processes.mjs';
import { phpEnv, phpVersionDir } from './php-ini.mjs';

const BENCH = fileURLToPath(new URL('../', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const SERVER_MAIN = join(REPO, 'apps/server/dist/main.js');

/** argv of one warm PHP worker for a scenario (the same for plugin, server and floor). */
function workerCommand(ctx) {
  return [
    'php',
    '-c',
    ctx.ini,
    join(BENCH, 'php', ctx.scenario.worker),
    ...(ctx.scenario.handler ? [join(BENCH, 'php', ctx.scenario.handler)] : []),
  ];
}

function startNode(script, ctx, extra = {}) {
  const config = {
    port: ctx.port,
    command: ctx.scenario.worker === undefined ? null : workerCommand(ctx),
    workers: ctx.workers,
    staticRoot: ctx.scenario.static ? ctx.docroot : null,
    relay: ctx.relay === 'unix' ? `unix://${join(ctx.dir, 'relay.sock')}` : ctx.relay,
    ...extra,
  };
  const child = spawnGroup(process.execPath, [...ctx.nodeArgs, join(BENCH, 'contenders', script)], {
    // cwd inside the repo, so bare imports resolve through the workspace when bench is a package
    cwd: join(BENCH, 'contenders'),
    env: phpEnv({ ...process.env, BENCH_CONFIG: JSON.stringify(config), NODE_ENV: 'production' }),
    logFile: ctx.logFile,
    stdinPipe: true,
  });
  return { groups: [child], roots: [child.pid], nodePid: child.pid };
}

async function waitForPath(path, child, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(path)) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited during start`);
    await sleep(50);
  }
  throw new Error(`${what} did not create ${path} within ${timeoutMs} ms`);
}

/**
 * php-fpm pm=static with ctx.workers children on a unix socket, the same for nginx and for warmpool
 * passing to php-fpm: the same number of PHP processes as warmpool's workers, all forked up front.
 * Running as root (-R) and listen.mode 0666: nginx's workers can always open the socket.
 */
async function startPhpFpm(ctx) {
  const dir = ctx.dir;
  const sock = join(dir, 'php-fpm.sock');
  const fpmConf = join(dir, 'php-fpm.conf');
  writeFileSync(
    fpmConf,
    `[global]
pid = ${join(dir, 'php-fpm.pid')}
error_log = ${join(dir, 'php-fpm.log')}
daemonize = no

[bench]
listen = ${sock}
listen.mode = 0666
listen.backlog = 4096
pm = static
pm.max_children = ${ctx.workers}
pm.max_requests = 0
catch_workers_output = yes
clear_env = no
`,
  );
  const fpmBin = `/usr/sbin/php-fpm${phpVersionDir()}`;
  const fpm = spawnGroup(fpmBin, ['-F', '-R', '-c', ctx.ini, '-y', fpmConf], {
    env: phpEnv(),
    logFile: ctx.logFile,
  });
  await waitForPath(sock, fpm, 'php-fpm');
  return { fpm, sock };
}

/**
 * nginx's usual classic PHP server block: try_files, and .php files to php-fpm
 * (fastcgi_split_path_info); with `cache`, the usual micro-caching lines (the zone is in the http block).
 */
function classicLocations(sock, cache = false) {
  const caching = cache
    ? `
      fastcgi_cache bench;
      fastcgi_cache_valid 200 60s;
      fastcgi_cache_lock on;
      fastcgi_cache_use_stale updating;`
    : '';
  return `index index.php doku.php index.html;
    location / { try_files $uri $uri/ /index.php?$args; }
    location ~ .php(/|$) {
      fastcgi_split_path_info ^(.+?.php)(/.*)$;
      try_files $fastcgi_script_name =404;${caching}
      fastcgi_pass unix:${sock};
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;
    }`;
}

/** `warmpool serve` with a generated YAML file; roots: the server and anything else in its tree. */
function startServer(ctx, yaml, extraGroups = []) {
  const file = join(ctx.dir, 'warmpool.yaml');
  writeFileSync(file, yaml);
  const child = spawnGroup(process.execPath, [...ctx.nodeArgs, SERVER_MAIN, 'serve', '-c', file], {
    cwd: ctx.dir,
    env: phpEnv({ ...process.env, NODE_ENV: 'production' }),
    logFile: ctx.logFile,
    stdinPipe: true,
  });
  return {
    groups: [child, ...extraGroups],
    roots: [child.pid, ...extraGroups.map((g) => g.pid)],
    nodePid: child.pid,
  };
}

const classicOnly = (scenario) => (scenario.classic ? true : 'classic scenarios only');
const workerOnly = (scenario) => (scenario.classic ? 'worker mode (classic scenarios run scripts)' : true);

function singleProcessEnv() {
  const env = phpEnv();
  delete env.PHP_CLI_SERVER_WORKERS; // one process, as documented (it would fork N workers)
  return env;
}

/** warmpool passing PHP to a php-fpm of its own; maxConnections null: max_connections left unset. */
/** The cached scenario's lines of a classic warmpool config: the micro-cache and gzip, as nginx's. */
function cachedLines(ctx) {
  return ctx.scenario.cache === true ? 'cache: { enabled: true }\n' : '';
}
function cachedMiddleware(ctx) {
  return ctx.scenario.cache === true ? '  middleware: [gzip]\n' : '';
}

async function startPass(ctx, maxConnections) {
  const { fpm, sock } = await startPhpFpm(ctx);
  const limit = maxConnections === null ? '' : `  max_connections: ${maxConnections}\n`;
  return startServer(
    ctx,
    `version: "3"
http:
  address: "127.0.0.1:${ctx.port}"
${cachedMiddleware(ctx)}${cachedLines(ctx)}logs: { level: warn }
admin: { socket: ${JSON.stringify(join(ctx.dir, 'admin.sock'))} }
fastcgi:
  root: ${JSON.stringify(ctx.docroot)}
  pass: ${JSON.stringify(`unix:${sock}`)}
${limit}  index: [index.php, doku.php, index.html]
`,
    [fpm],
  );
}

export const CONTENDERS = [
  {
    key: 'nginx-fpm',
    label: 'nginx+php-fpm',
    baseline: true,
    supports: () => true,
    async start(ctx) {
      const dir = ctx.dir;
      const { fpm, sock } = await startPhpFpm(ctx);

      for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
        mkdirSync(join(dir, sub), { recursive: true });
      const phpLocation = `
      fastcgi_pass unix:${sock};
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME ${ctx.docroot}/index.php;
      fastcgi_param SCRIPT_NAME /index.php;`;
      // The static scenarios use try_files (a file first, else PHP), the others pass every request
      // to PHP without a filesystem lookup, as the plugin does in each case.
      // The classic scenarios get the usual classic server block (scripts by their path).
      const locations = ctx.scenario.classic
        ? classicLocations(sock, ctx.scenario.cache === true)
        : ctx.scenario.static
          ? `location / { try_files $uri @php; }
    location @php {${phpLocation}
    }`
          : `location / {${phpLocation}
    }`;
      const nginxConf = join(dir, 'nginx.conf');
      writeFileSync(
        nginxConf,
        `user root;
worker_processes auto;
daemon off;
master_process on;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  # a 1 MB upload or response stays in memory, as it does in Node
  client_max_body_size 16m;
  client_body_buffer_size 2m;
  fastcgi_buffer_size 64k;
  fastcgi_buffers 32 64k;
  fastcgi_busy_buffers_size 128k;${
    ctx.scenario.cache === true
      ? `
  # the cached scenario: nginx's micro-caching recipe, and gzip with its defaults (level 1)
  fastcgi_cache_path ${join(dir, 'fastcgi-cache')} levels=1:2 keys_zone=bench:10m max_size=64m inactive=60s;
  fastcgi_cache_key "$scheme$request_method$host$request_uri";
  gzip on;`
      : ''
  }
  server {
    listen 127.0.0.1:${ctx.port} backlog=4096;
    root ${ctx.docroot};
    ${locations}
  }
}
`,
      );
      // -e: the error log before the config is read (the default /var/log/nginx may not be writable);
      // -p: prefix for relative paths, so nothing touches /etc/nginx or /var/lib/nginx.
      const nginx = spawnGroup('/usr/sbin/nginx', ['-e', join(dir, 'nginx-error.log'), '-p', dir, '-c', nginxConf], {
        logFile: ctx.logFile,
      });
      return { groups: [nginx, fpm], roots: [nginx.pid, fpm.pid], nodePid: null };
    },
  },
  {
    key: 'classic-pass',
    label: 'warmpool → php-fpm',
    // classic mode with fastcgi.pass: warmpool in nginx's place, in front of the same php-fpm setup
    // (its own instance, so the tree measured is warmpool's server and its php-fpm)
    supports: (scenario) =>
      existsSync(SERVER_MAIN) ? classicOnly(scenario) : 'not built yet (apps/server/dist/main.js missing)',
    start: (ctx) => startPass(ctx, ctx.workers),
  },
  {
    key: 'classic-pass-unset',
    label: 'warmpool → php-fpm, max_connections unset',
    // the same without max_connections: its default (8) is above php-fpm's children, as with
    // Debian's pool file (5), so warmpool learns how many php-fpm serves at once
    supports: (scenario) =>
      existsSync(SERVER_MAIN) ? classicOnly(scenario) : 'not built yet (apps/server/dist/main.js missing)',
    start: (ctx) => startPass(ctx, null),
  },
  {
    key: 'classic-cgi',
    label: 'warmpool php-cgi',
    // classic mode without pass: warmpool runs ctx.workers php-cgi processes itself (its pool)
    supports: (scenario) =>
      existsSync(SERVER_MAIN) ? classicOnly(scenario) : 'not built yet (apps/server/dist/main.js missing)',
    start: (ctx) =>
      startServer(
        ctx,
        `version: "3"
http:
  address: "127.0.0.1:${ctx.port}"
  pool:
    num_workers: ${ctx.workers}
${cachedMiddleware(ctx)}${cachedLines(ctx)}logs: { level: warn }
admin: { socket: ${JSON.stringify(join(ctx.dir, 'admin.sock'))} }
fastcgi:
  root: ${JSON.stringify(ctx.docroot)}
  command: ["php-cgi", "-c", ${JSON.stringify(ctx.ini)}]
  index: [index.php, doku.php, index.html]
`,
      ),
  },
  {
    key: 'plugin',
    label: 'warmpool plugin',
    supports: workerOnly,
    start: (ctx) => startNode('plugin.mjs', ctx),
  },
  {
    key: 'server',
    label: 'warmpool server',
    // The `warmpool` binary (apps/server) does not exist yet: its row prints n/a until
    // apps/server/dist/main.js is built, then this path starts it from a generated YAML file.
    supports: (scenario) =>
      existsSync(SERVER_MAIN) ? workerOnly(scenario) : 'not built yet (apps/server/dist/main.js missing)',
    async start(ctx) {
      const yaml = join(ctx.dir, 'warmpool.yaml');
      const command = workerCommand(ctx)
        .map((a) => JSON.stringify(a))
        .join(', ');
      writeFileSync(
        yaml,
        `version: "3"
server:
  command: [${command}]
http:
  address: "127.0.0.1:${ctx.port}"
  pool:
    num_workers: ${ctx.workers}
${ctx.scenario.static ? `  middleware: ["static"]\n  static:\n    dir: ${JSON.stringify(ctx.docroot)}\n` : ''}`,
      );
      const child = spawnGroup(process.execPath, [...ctx.nodeArgs, SERVER_MAIN, 'serve', '-c', yaml], {
        cwd: ctx.dir,
        env: phpEnv({ ...process.env, NODE_ENV: 'production' }),
        logFile: ctx.logFile,
        stdinPipe: true,
      });
      return { groups: [child], roots: [child.pid], nodePid: child.pid };
    },
  },
  {
    key: 'floor',
    label: 'node:http floor',
    supports: (scenario) => (scenario.static ? 'no static layer (the floor only relays to PHP)' : workerOnly(scenario)),
    start: (ctx) => startNode('floor.mjs', ctx),
  },
  {
    key: 'classic-floor',
    label: 'node:http floor → php-fpm',
    // node:http and warmpool's FastCGI client pool in front of the same php-fpm setup, nothing else:
    // what the server's own layers cost in the classic scenarios (bench/contenders/classic-floor.mjs)
    supports: (scenario) =>
      scenario.classic?.app === 'front'
        ? 'no try_files (the floor runs docroot + path)'
        : scenario.cache === true
          ? 'no cache or compression (the floor only relays to PHP)'
          : classicOnly(scenario),
    async start(ctx) {
      const { fpm, sock } = await startPhpFpm(ctx);
      const node = startNode('classic-floor.mjs', ctx, { fpmSocket: sock, docroot: ctx.docroot });
      return { groups: [...node.groups, fpm], roots: [...node.roots, fpm.pid], nodePid: node.nodePid };
    },
  },
  {
    key: 'php-s',
    label: 'php -S (1 process)',
    // The built-in server is one process serving one request at a time: a reference point only.
    supports: (scenario) => (scenario.cache === true ? 'no cache or compression' : true),
    async start(ctx) {
      const child = spawnGroup('php', ['-q', '-c', ctx.ini, '-S', `127.0.0.1:${ctx.port}`, '-t', ctx.docroot], {
        cwd: ctx.docroot,
        env: singleProcessEnv(),
        logFile: ctx.logFile,
      });
      return { groups: [child], roots: [child.pid], nodePid: null };
    },
  },
];
