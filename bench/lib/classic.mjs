// The classic scenarios' document roots (one .php file per entry point, as nginx + php-fpm serves
// them): classic-hello's single echo script (classic-pretty's index.php), classic-cached's page, and
// classic-app's copy of Debian's DokuWiki. Each root also gets /__bench-info.php, so every contender proves its php.ini
// like the worker scenarios do.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../', import.meta.url));
export const DOKUWIKI_DIR = '/usr/share/dokuwiki';
/** what the classic scenarios ask first: the php.ini proof */
export const CLASSIC_INFO_PATH = '/__bench-info.php';

/** Writes the scenario's document root under `dir`; returns its path. */
export function prepareClassicDocroot(scenario, dir) {
  const docroot = join(dir, 'public');
  mkdirSync(dir, { recursive: true });
  if (scenario.classic.app === 'hello' || scenario.classic.app === 'front') {
    // "front": the same script as the front controller every pretty URL falls back to
    mkdirSync(docroot, { recursive: true });
    writeFileSync(
      join(docroot, scenario.classic.app === 'hello' ? 'hello.php' : 'index.php'),
      `<?php require ${JSON.stringify(join(BENCH, 'php', 'classic', 'hello.php'))};\n`,
    );
  } else if (scenario.classic.app === 'cached') {
    mkdirSync(docroot, { recursive: true });
    writeFileSync(
      join(docroot, 'page.php'),
      `<?php require ${JSON.stringify(join(BENCH, 'php', 'classic', 'page.php'))};\n`,
    );
  } else if (scenario.classic.app === 'dokuwiki') {
    prepareDokuWiki(dir, docroot);
  } else {
    throw new Error(`unknown classic app ${scenario.classic.app}`);
  }
  writeFileSync(
    join(docroot, CLASSIC_INFO_PATH.slice(1)),
    `<?php define('BENCH_INFO', ${JSON.stringify(join(BENCH, 'php', 'info.php'))});\nrequire ${JSON.stringify(join(BENCH, 'php', 'classic', 'bench-info.php'))};\n`,
  );
  return docroot;
}

/**
 * Debian's DokuWiki, copied (symlinks followed) with its config and data next to it: the system's
 * copy is only read. Anonymous readers, no session (NOSESSION: a benchmark client keeps no cookie,
 * so every request would otherwise write a session file), no update check.
 */
function prepareDokuWiki(dir, docroot) {
  if (!existsSync(join(DOKUWIKI_DIR, 'doku.php'))) {
    throw new Error('DokuWiki is not installed: apt-get install -y --no-install-recommends dokuwiki');
  }
  const conf = join(dir, 'conf');
  const data = join(dir, 'data');
  execFileSync('cp', ['-rL', DOKUWIKI_DIR, docroot]);
  execFileSync('cp', ['-rL', '/etc/dokuwiki', conf]);
  execFileSync('cp', ['-r', '/var/lib/dokuwiki/data', data]);
  writeFileSync(
    join(docroot, 'inc', 'preload.php'),
    `<?php\nif (!defined('DOKU_CONF')) define('DOKU_CONF', '${conf}/');\nif (!defined('NOSESSION')) define('NOSESSION', true);\n`,
  );
  writeFileSync(
    join(conf, 'local.php'),
    `<?php\n$conf['title'] = 'warmpool bench';\n$conf['savedir'] = '${data}';\n$conf['useacl'] = 0;\n$conf['userewrite'] = 0;\n$conf['updatecheck'] = 0;\n`,
  );
}
