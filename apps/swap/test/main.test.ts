// The warmpool-swap command line: flags that only `start` reads are refused elsewhere, where they
// did nothing (`swap --settle 0` still waited the supervisor's 2 s).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXIT_USAGE, main } from '../src/main.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** main()'s exit code and what it wrote to stderr. */
async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const code = await main(argv);
  return { code, stderr };
}

describe('warmpool-swap arguments', () => {
  it('refuses the flags of start given to swap, rollback or status, naming them and what to do', async () => {
    const swap = await run(['swap', '--binary', '/opt/v2/warmpool', '--settle', '0', '--state', '/nonexistent']);
    expect(swap.code).toBe(EXIT_USAGE);
    expect(swap.stderr).toBe(
      "✗ WP_SWAP_USAGE: --settle: set by `warmpool-swap start` for the supervisor's life, not per swap; restart the supervisor with it (systemctl edit warmpool-swap)\n",
    );
    const status = await run(['status', '--drain-timeout', '5s', '--ready-timeout', '1s', '--state', '/nonexistent']);
    expect(status.code).toBe(EXIT_USAGE);
    expect(status.stderr).toContain('--ready-timeout, --drain-timeout: set by `warmpool-swap start`');
  });
});
