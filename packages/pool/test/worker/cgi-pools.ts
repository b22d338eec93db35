// A php-cgi pool for one test: started, handed over, closed; afterwards every php-cgi process it
// ever ran must be gone, with anything it started.
import { expect } from 'vitest';
import type { PoolOptions } from '../../src/options.js';
import type { Pool } from '../../src/pool/pool.js';
import { type CgiDriverOptions, createCgiPool } from '../../src/worker/cgi-driver.js';
import type { CgiReply, CgiRequest } from '../../src/worker/cgi-worker.js';
import { processGroupMembers } from '../fastcgi/php-servers.js';
import { recordingLogger } from '../php-fixtures.js';

export type CgiPool = Pool<CgiRequest, CgiReply>;

/** One worker unless the options size the pool; `cgi`: the driver's options (pipelining). */
export async function withCgiPool<T>(
  options: Partial<PoolOptions<CgiRequest>>,
  fn: (pool: CgiPool) => Promise<T>,
  cgi?: CgiDriverOptions,
): Promise<T> {
  const dynamic = options.min_workers !== undefined || options.max_workers !== undefined;
  const pool = createCgiPool(
    {
      command: 'php-cgi',
      ...(dynamic ? {} : { num_workers: 1 }),
      logger: recordingLogger(),
      ...options,
    },
    cgi,
  );
  await pool.start();
  const pids = new Set<number>();
  pool.on('worker:ready', ({ pid }) => pids.add(pid));
  for (const worker of await pool.workers()) pids.add(worker.pid);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
    for (const pid of pids) expect(processGroupMembers(pid)).toEqual([]);
  }
}
