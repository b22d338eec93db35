#!/usr/bin/env node
// `pnpm build:binary`: the `warmpool` command as ONE executable (a Node.js single executable
// application) at apps/server/dist-bin/warmpool. It needs no node_modules and no Node.js install:
// copy it anywhere, run `warmpool serve -c warmpool.yaml`. Only `php` must be on the machine.
//
// Steps (each prints one line; any failure exits 1 and says what to do):
// 1. check that dist/ is built (`pnpm build` compiles the TypeScript; this script never does);
// 2. bundle dist/main.js and every dependency into one CommonJS file with esbuild (Node 20's SEA
//    runs CommonJS only, and its `require` loads built-in modules only, so nothing may stay external);
// 3. write sea-config.json and turn the bundle into a blob: `node --experimental-sea-config`, with a
//    V8 code cache (useCodeCache) so the binary starts faster than `node dist/main.js`;
// 4. copy the Node.js binary running this script and inject the blob with postject;
// 5. smoke test: `warmpool version --json` through the new binary reports this package's version.
//
// The source is ESM written for `node dist/main.js`; in a CommonJS bundle:
// - main.js runs itself with a top-level `await` when it is the process's entry (a guard on
//   import.meta.url). CommonJS has neither, so the guard is cut out of the bundle and the bundle's
//   own entry calls `main()`; the binary's exit code is main()'s.
// - commands/version.js reads ../../package.json next to itself: a JSON file read relative to
//   import.meta.url is inlined at build time (`readFileSync(new URL('x.json', import.meta.url))`).
// - any other use of import.meta would be silently empty in CommonJS: esbuild's warning is made an
//   error, so such code fails this build instead of the binary.
// Optional modules that dependencies try to require (ws: the native add-ons bufferutil and
// utf-8-validate; debug, under acme-client: supports-color) are
// bundled as modules that throw MODULE_NOT_FOUND, which is what those try/catch blocks expect; left
// as require() calls they would make the SEA print a warning on every start. Any other module left
// outside the bundle fails the build: the binary could not load it.
//
// Usage: node scripts/build-binary.mjs [--out FILE]    (from any folder)
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const APP = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(APP, 'dist');
const MAIN = join(DIST, 'main.js');
const OUT_DIR = join(APP, 'dist-bin');
const BUNDLE = join(OUT_DIR, 'warmpool.cjs');
const SEA_CONFIG = join(OUT_DIR, 'sea-config.json');
const BLOB = join(OUT_DIR, 'sea-prep.blob');
/** The fuse postject flips so the Node binary runs the injected blob (Node's documented value). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const MIN_NODE_MAJOR = 20;

function fail(message) {
  console.error(`✘ build:binary: ${message}`);
  process.exit(1);
}

function step(message) {
  console.log(`  ${message}`);
}

function parseOut(argv) {
  const i = argv.indexOf('--out');
  if (i === -1) return join(OUT_DIR, process.platform === 'win32' ? 'warmpool.exe' : 'warmpool');
  const value = argv[i + 1];
  if (value === undefined) fail('--out needs a file, e.g. --out /usr/local/bin/warmpool');
  return resolve(value);
}

/** esbuild plugin: the two source rewrites described at the top of this file. */
function esmToSeaPlugin() {
  // main.js's tail: `const invokedAs = process.argv[1]; if (… import.meta.url …) { await main(…) }`
  const GUARD = /(?:\n\/\/[^\n]*)*\nconst invokedAs = process\.argv\[1\];[\s\S]*$/;
  const JSON_BESIDE = /readFileSync\(new URL\((['"])([^'"]+\.json)\1, import\.meta\.url\), (['"])utf-?8\3\)/g;
  return {
    name: 'warmpool-esm-to-sea',
    setup(build) {
      build.onLoad({ filter: /\.js$/ }, (args) => {
        if (/[\\/]node_modules[\\/]/.test(args.path)) return undefined;
        let contents = readFileSync(args.path, 'utf8');
        const before = contents;
        if (args.path === MAIN) contents = contents.replace(GUARD, '\n');
        contents = contents.replace(JSON_BESIDE, (_all, _q, rel) => {
          const file = fileURLToPath(new URL(rel, `file://${args.path}`));
          if (!existsSync(file))
            throw new Error(`${relative(APP, args.path)} reads ${rel} (${file}), which does not exist`);
          // only what is read: keep the whole file, it is small (package.json)
          return JSON.stringify(readFileSync(file, 'utf8'));
        });
        return contents === before ? undefined : { contents, loader: 'js', resolveDir: dirname(args.path) };
      });
    },
  };
}

/** Optional modules, required inside try/catch by dependencies; never in the binary. */
const OPTIONAL_ADDONS = ['bufferutil', 'utf-8-validate', 'supports-color'];

function missingOptionalPlugin() {
  const filter = new RegExp(`^(${OPTIONAL_ADDONS.join('|')})$`);
  return {
    name: 'warmpool-missing-optional',
    setup(build) {
      build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'missing-optional' }));
      build.onLoad({ filter: /.*/, namespace: 'missing-optional' }, (args) => ({
        contents: `const error = new Error(${JSON.stringify(`Cannot find module '${args.path}' (not in the warmpool binary)`)});
error.code = 'MODULE_NOT_FOUND';
throw error;`,
        loader: 'js',
      }));
    },
  };
}

async function bundle() {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    fail('esbuild is not installed: run `pnpm install` at the repository root');
  }
  const result = await esbuild.build({
    stdin: {
      // The bundle's entry: main() with the CLI's arguments. In a single executable application
      // process.argv is [binary, binary, ...args], as with `node main.js ...args`; both are the
      // resolved executable, so the name it was run by (a link or copy named rr) is argv0's.
      contents: `import { basename } from 'node:path';
import { main } from './dist/main.js';
main(process.argv.slice(2), undefined, { name: basename(process.argv0) }).then(
  (code) => process.exit(code),
  (error) => { console.error(error); process.exit(1); },
);`,
      resolveDir: APP,
      sourcefile: 'sea-entry.js',
      loader: 'js',
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: BUNDLE,
    legalComments: 'none',
    keepNames: true,
    logLevel: 'silent',
    logOverride: { 'empty-import-meta': 'error' },
    plugins: [esmToSeaPlugin(), missingOptionalPlugin()],
    metafile: true,
  });
  const { builtinModules } = await import('node:module');
  const builtins = new Set(builtinModules);
  const outside = Object.values(result.metafile.outputs)
    .flatMap((output) => output.imports)
    .filter((entry) => entry.external && !entry.path.startsWith('node:') && !builtins.has(entry.path))
    .map((entry) => entry.path);
  if (outside.length > 0)
    throw new Error(`left outside the bundle, the binary could not load: ${[...new Set(outside)].join(', ')}`);
  for (const warning of result.warnings)
    console.warn(
      `  warning: ${warning.text}${warning.location ? ` (${warning.location.file}:${warning.location.line})` : ''}`,
    );
  return result.metafile;
}

function nodeMajor() {
  return Number(process.versions.node.split('.')[0]);
}

/**
 * postject's CLI in a child process: its ELF parser (LIEF) prints "Can't find string offset for
 * section name" warnings for Node's note sections, harmless and not silenceable in-process.
 */
function inject(binary) {
  let cli;
  try {
    const require = createRequire(import.meta.url);
    const pkgFile = require.resolve('postject/package.json');
    const bin = JSON.parse(readFileSync(pkgFile, 'utf8')).bin;
    cli = join(dirname(pkgFile), typeof bin === 'string' ? bin : bin.postject);
  } catch {
    fail('postject is not installed: run `pnpm install` at the repository root');
  }
  const args = [cli, binary, 'NODE_SEA_BLOB', BLOB, '--sentinel-fuse', SEA_FUSE];
  if (process.platform === 'darwin') args.push('--macho-segment-name', 'NODE_SEA');
  const run = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (run.status !== 0) {
    const noise = /^warning: Can't find string offset for section name/;
    const output = `${run.stdout}${run.stderr}`
      // biome-ignore lint/suspicious/noControlCharactersInRegex: strips terminal colour codes
      .replace(/\u001b\[[0-9;]*m/g, '')
      .split('\n')
      .filter((line) => line !== '' && !noise.test(line));
    throw new Error(`exit ${run.status ?? run.signal}${output.length ? `:\n${output.join('\n')}` : ''}`);
  }
}

async function buildBinary() {
  const started = performance.now();
  const out = parseOut(process.argv.slice(2));
  if (nodeMajor() < MIN_NODE_MAJOR)
    fail(`Node.js ${process.version} cannot build single executables; use Node.js ${MIN_NODE_MAJOR} or newer`);
  // 1. the compiled server
  if (!existsSync(MAIN))
    fail(
      `${relative(process.cwd(), MAIN)} is missing: run \`pnpm build\` first (or \`pnpm build:binary\` at the repository root, which does both)`,
    );
  const pkg = JSON.parse(readFileSync(join(APP, 'package.json'), 'utf8'));
  console.log(
    `building the warmpool ${pkg.version} binary with Node.js ${process.version} (${process.platform}-${process.arch})`,
  );
  mkdirSync(OUT_DIR, { recursive: true });
  // the folder ignores itself: nothing in it is source
  writeFileSync(join(OUT_DIR, '.gitignore'), '*\n');

  // 2. one CommonJS file
  const metafile = await bundle().catch((error) => {
    const hint = /Top-level await/.test(error.message)
      ? '\nmain.js no longer ends with the self-run guard this script cuts out (GUARD in esmToSeaPlugin): update GUARD, or move the guard into its own entry file'
      : '';
    fail(`bundling ${relative(process.cwd(), MAIN)} failed:\n${error.message}${hint}`);
  });
  const inputs = Object.keys(metafile.inputs).length;
  step(`bundled ${inputs} modules into ${relative(APP, BUNDLE)} (${mb(statSync(BUNDLE).size)})`);

  // 3. the blob
  writeFileSync(
    SEA_CONFIG,
    `${JSON.stringify({ main: BUNDLE, output: BLOB, disableExperimentalSEAWarning: true, useCodeCache: true }, null, 2)}\n`,
  );
  rmSync(BLOB, { force: true });
  const prep = spawnSync(process.execPath, ['--experimental-sea-config', SEA_CONFIG], {
    cwd: OUT_DIR,
    encoding: 'utf8',
  });
  if (prep.status !== 0 || !existsSync(BLOB))
    fail(`node --experimental-sea-config failed (exit ${prep.status}):\n${prep.stdout}${prep.stderr}`);
  step(`wrote ${relative(APP, BLOB)} (${mb(statSync(BLOB).size)})`);

  // 4. Node.js + blob; written next to the target and renamed, so a running binary is never half-written
  mkdirSync(dirname(out), { recursive: true });
  const partial = `${out}.partial`;
  rmSync(partial, { force: true });
  const injectStarted = performance.now();
  copyFileSync(process.execPath, partial);
  chmodSync(partial, 0o755);
  // macOS: Node's signature must go before the binary changes, and an ad-hoc one comes after
  if (process.platform === 'darwin') execFileSync('codesign', ['--remove-signature', partial]);
  try {
    inject(partial);
  } catch (error) {
    rmSync(partial, { force: true });
    fail(`postject could not inject the blob into a copy of ${process.execPath}: ${error.message}`);
  }
  if (process.platform === 'darwin') execFileSync('codesign', ['--sign', '-', partial]);
  renameSync(partial, out);
  step(
    `injected it into a copy of ${process.execPath} in ${((performance.now() - injectStarted) / 1000).toFixed(1)} s`,
  );

  // 5. smoke test
  const smoke = spawnSync(out, ['version', '--json'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 30_000,
  });
  let reported;
  try {
    reported = JSON.parse(smoke.stdout).warmpool;
  } catch {
    reported = undefined;
  }
  if (smoke.status !== 0 || reported !== pkg.version) {
    fail(
      `the new binary does not run: \`${out} version --json\` exited ${smoke.status ?? smoke.signal} with\n${smoke.stdout}${smoke.stderr}`,
    );
  }
  console.log(
    `✓ ${relative(process.cwd(), out) || out} (${mb(statSync(out).size)}) in ${((performance.now() - started) / 1000).toFixed(1)} s: run \`${relative(process.cwd(), out).startsWith('.') ? out : `./${relative(process.cwd(), out)}`} serve -c warmpool.yaml\``,
  );
}

function mb(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

await buildBinary();
