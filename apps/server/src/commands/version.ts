// `warmpool version [--json]`: this build's version, the Node.js running it, and what it speaks with
// PHP: RoadRunner's worker protocol (goridge v1 frames, JSON or protobuf http.v1 contexts) and the
// RR_VERSION workers see, plus the .rr.yaml layout it reads.
import { readFileSync } from 'node:fs';
import type { CliOutput } from '../output.js';
import { EXIT_OK } from '../exit-codes.js';

/**
 * The RR_VERSION the pool gives workers (@warmpool/pool worker/command.ts RR_COMPAT_VERSION, not
 * exported by the pool); test/e2e/server-cli.test.ts checks it against what a worker really sees.
 */
export const RR_COMPAT_VERSION = '2025.1.15';
export const RR_CONFIG_VERSION = '3';

export interface VersionInfo {
  warmpool: string;
  node: string;
  rr: { protocol: string; rr_version: string; config: string };
}

export function versionInfo(): VersionInfo {
  return {
    warmpool: packageVersion(),
    node: process.version,
    rr: {
      protocol: 'goridge v1 frames; http contexts as JSON or protobuf http.v1',
      rr_version: RR_COMPAT_VERSION,
      config: `.rr.yaml version "${RR_CONFIG_VERSION}" (RoadRunner 2023.x-2025.x)`,
    },
  };
}

/** apps/server/package.json, two folders above dist/commands/. */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * What `rr --version` prints when this binary runs as `rr`: RoadRunner's cobra line ("rr version
 * X ...") with a RoadRunner version, so tools comparing it with their minimum accept it (Laravel
 * Octane splits on spaces and version_compare()s word 3 with 2023.3.0), and ours beside it.
 */
export function roadRunnerVersionLine(info: VersionInfo = versionInfo()): string {
  return `rr version ${info.rr.rr_version} (warmpool ${info.warmpool}, node ${info.node})`;
}

export async function run(args: { json?: boolean; roadRunner?: boolean }, out: CliOutput): Promise<number> {
  const info = versionInfo();
  if (args.roadRunner === true && args.json !== true) {
    out.raw(roadRunnerVersionLine(info));
    return EXIT_OK;
  }
  if (args.json === true) {
    out.raw(JSON.stringify(info, null, 2));
    return EXIT_OK;
  }
  out.raw(`warmpool ${info.warmpool}`);
  out.raw(`node ${info.node}`);
  out.raw(`RoadRunner worker protocol: ${info.rr.protocol}; workers see RR_VERSION=${info.rr.rr_version}`);
  out.raw(`config: ${info.rr.config}`);
  return EXIT_OK;
}
