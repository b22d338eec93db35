// How the Node contenders find the workspace packages. bench/ is a plain folder (not a pnpm
// workspace package yet), so a bare `import 'fastify'` from here cannot resolve: fall back to the
// copies the workspace already installed for packages/fastify, and to the packages' built dist/.
// Once `bench` is listed in pnpm-workspace.yaml and installed, the bare imports win.
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const fromFastifyPackage = createRequire(`${REPO}packages/fastify/package.json`);

async function importFirst(specifier, fallbackPath) {
  try {
    return await import(specifier);
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  }
  try {
    return await import(pathToFileURL(fallbackPath()).href);
  } catch (error) {
    throw new Error(
      `cannot load ${specifier}: run \`cd ${REPO} && pnpm install && pnpm build\` first (${error.message})`,
    );
  }
}

export const loadFastify = async () =>
  (await importFirst('fastify', () => fromFastifyPackage.resolve('fastify'))).default;
export const loadWarmpoolFastify = () =>
  importFirst('@warmpool/fastify', () => `${REPO}packages/fastify/dist/index.js`);
export const loadPool = () => importFirst('@warmpool/pool', () => `${REPO}packages/pool/dist/index.js`);
export const loadProtocol = () =>
  importFirst('@warmpool/pool/protocol', () => `${REPO}packages/pool/dist/protocol/index.js`);

/** The contender's settings, passed by the harness as JSON in BENCH_CONFIG. */
export function readConfig() {
  const raw = process.env.BENCH_CONFIG;
  if (raw === undefined) throw new Error('BENCH_CONFIG is not set: contenders are started by bench/run.mjs');
  return JSON.parse(raw);
}

/** Pool warnings and errors to stderr (the contender's log file); nothing on the hot path. */
export const stderrLogger = {
  debug() {},
  info() {},
  warn: (obj, msg) => process.stderr.write(`warn: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`error: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
};

/**
 * Stop cleanly on SIGTERM/SIGINT, and also when the harness goes away (its stdin pipe closes),
 * so a contender never outlives the bench.
 */
export function stopOn(close) {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    try {
      await close();
    } finally {
      process.exit(0);
    }
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
