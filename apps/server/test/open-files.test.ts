import { describe, expect, it } from 'vitest';
import { openFilesLimit, openFilesWarning } from '../src/open-files.js';

// the layout of /proc/self/limits, as Linux writes it
const limits = (soft: string, hard = soft) =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             96367                96367                processes ',
    `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `,
    'Max locked memory         8388608              8388608              bytes     ',
  ].join('\n');

describe('open files limit', () => {
  it('reads the soft limit of this process, as /proc/self/limits says it', () => {
    expect(openFilesLimit(limits('1024', '524288'))).toBe(1024);
    expect(openFilesLimit(limits('unlimited'))).toBeNull();
    expect(openFilesLimit()).toBeGreaterThan(0);
  });

  it('warns below 8192 files, or below http.max_connections, saying what to raise', () => {
    expect(openFilesWarning(0, 1024)).toMatch(/^open files limit 1024: this server can hold about 768 connections/);
    expect(openFilesWarning(0, 1024)).toMatch(/LimitNOFILE=65536.*max_connections_per_ip/);
    expect(openFilesWarning(0, 65536)).toBeNull();
    expect(openFilesWarning(100_000, 65536)).toMatch(/below http\.max_connections \(100000\)/);
    // the limit it suggests holds max_connections
    expect(openFilesWarning(100_000, 20_000)).toMatch(/LimitNOFILE=100352; a shell: ulimit -n 100352/);
    expect(openFilesWarning(10_000, 65536)).toBeNull();
    expect(openFilesWarning(0, null)).toBeNull();
  });
});
