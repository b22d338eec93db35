import { InvalidPoolOptionError } from '@warmpool/pool';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../src/errors.js';
import { checkOptions, resolvePluginPool } from '../src/options.js';

// Option errors say their key in structured details, set where the option is checked, so the
// config can point at the file's line without reading message text (docs/EXCHANGE.md, errors).
describe('option errors carry key, reason and value', () => {
  it('a pool option under `pool` is named pool.<key>; a hoisted one (command, env, cwd, relay) by itself', () => {
    const underPool = (() => {
      try {
        resolvePluginPool({ command: 'php w.php', pool: { supervisor: { exec_ttl: 'soon' } } }, console);
      } catch (error) {
        return error as InvalidOptionError;
      }
    })();
    expect(underPool).toBeInstanceOf(InvalidOptionError);
    expect(underPool!.details).toMatchObject({ key: 'pool.supervisor.exec_ttl' });
    expect(underPool!.details.reason).toMatch(/is not a duration/);
    expect(underPool!.message).toBe(`warmpool option "pool.supervisor.exec_ttl": ${underPool!.details.reason}`);

    const hoisted = (() => {
      try {
        resolvePluginPool({ command: 'php w.php', relay: 'carrier-pigeon://x' }, console);
      } catch (error) {
        return error as InvalidOptionError;
      }
    })();
    expect(hoisted!.details.key).toBe('relay');
  });

  it('a top-level pool option written under pool (command, env, cwd, relay, logger, warmup) is refused, saying where it goes', () => {
    for (const key of ['command', 'env', 'cwd', 'relay', 'logger', 'warmup']) {
      // the pool's own type leaves them out; a JavaScript caller or a spread can still put them there
      const pool = { num_workers: 1, [key]: key === 'env' ? { A: '1' } : 'x' } as never;
      expect(() => resolvePluginPool({ command: 'php w.php', pool }, console), key).toThrow(
        `warmpool option "pool.${key}": is a top-level option of the plugin: write ${key} beside pool, not in it`,
      );
    }
  });

  it('keeps the offending value', () => {
    const error = new InvalidPoolOptionError('num_workers', 'must be an integer from 1 to 500, got 0', 0);
    expect(error.details).toEqual({ key: 'num_workers', reason: 'must be an integer from 1 to 500, got 0', value: 0 });
    const renamed = InvalidOptionError.from('pool.num_workers', error);
    expect(renamed.details).toEqual({ key: 'pool.num_workers', reason: error.details.reason, value: 0 });
  });

  it('checkOptions reports every problem at once, each with its own key', () => {
    const problems = checkOptions({
      command: 'php w.php',
      pool: { max_jobs: -1 },
      max_request_size: -5,
      trusted_subnets: ['10.0.0.0/99'],
    });
    expect(problems.map((p) => p.details.key).sort()).toEqual([
      'max_request_size',
      'pool.max_jobs',
      'trusted_subnets[0]',
    ]);
    for (const problem of problems) expect(problem.message).toContain(problem.details.reason);
  });
});
