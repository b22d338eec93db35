// Type-level checks of the public surface; `pnpm typecheck` (tsc -p tsconfig.test.json) is what
// enforces the @ts-expect-error lines, vitest only runs the trivial runtime part.
import type { FastifyInstance } from 'fastify';
import type { AnyPool, PoolStats, WorkerInfo } from '@warmpool/pool';
import { describe, expectTypeOf, it } from 'vitest';
import type { WarmpoolOptions } from '../src/index.js';

describe('public types', () => {
  it('options accept RR-spelled keys and reject unknown or mistyped ones', () => {
    const ok: WarmpoolOptions = {
      command: 'php worker.php',
      pool: {
        num_workers: 4,
        max_jobs: 100,
        allocate_timeout: '30s',
        supervisor: { exec_ttl: 5000, max_worker_memory: 128 },
      },
      codec: 'proto',
      static: { root: 'public', forbidden: 404 },
      trusted_subnets: ['10.0.0.0/8'],
      access: [{ prefix: '/metrics', allow: ['127.0.0.1/32'] }],
      max_request_size: 10,
      uploads: { dir: '/tmp', forbid: ['.php'] },
    };
    expectTypeOf(ok.command).toEqualTypeOf<string | readonly string[]>();
    const classic: WarmpoolOptions = {
      fastcgi: { root: '/var/www/html', pass: 'unix:/run/php/php8.2-fpm.sock', no_exec: ['wp-content/uploads'] },
    };
    // @ts-expect-error fastcgi.root is required
    const noRoot: WarmpoolOptions = { fastcgi: { pass: '127.0.0.1:9000' } };
    void [classic, noRoot];
    // @ts-expect-error an unknown option
    const unknown: WarmpoolOptions = { command: 'php w.php', num_workers: 2 };
    // @ts-expect-error codec is json | proto
    const codec: WarmpoolOptions = { command: 'php w.php', codec: 'xml' };
    // @ts-expect-error forbidden is 'php' | 403 | 404
    const forbidden: WarmpoolOptions = { command: 'php w.php', static: { root: '.', forbidden: 500 } };
    // @ts-expect-error neither a worker command nor a fastcgi section
    const neither: WarmpoolOptions = { pool: { num_workers: 2 } };
    // @ts-expect-error a worker command and a fastcgi section: two different sites
    const both: WarmpoolOptions = { command: 'php w.php', fastcgi: { root: '/var/www/html' } };
    void [unknown, codec, forbidden, neither, both];
  });

  it('decorates fastify.warmpool', () => {
    expectTypeOf<FastifyInstance['warmpool']['reset']>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<FastifyInstance['warmpool']['workers']>().returns.toEqualTypeOf<Promise<WorkerInfo[]>>();
    expectTypeOf<FastifyInstance['warmpool']['stats']>().returns.toEqualTypeOf<PoolStats>();
    // null for a classic site passing to php-fpm: its processes are not ours
    expectTypeOf<FastifyInstance['warmpool']['pool']>().toEqualTypeOf<AnyPool | null>();
  });
});
