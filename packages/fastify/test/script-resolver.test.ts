// The classic-mode script resolver on a real directory tree (files, directories, symlinks): what
// runs, what is sent, what is refused, in the spirit of file-policy.test.ts.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WarmpoolError } from '@warmpool/pool';
import { createFilePolicy } from '../src/static/file-policy.js';
import { createScriptResolver, type ScriptResolverOptions, type ScriptVerdict } from '../src/static/script-resolver.js';
import { DEFAULT_STATIC_FORBID } from '../src/static/static.js';

let base: string;
let root: string;

const files = [
  'index.php',
  'info.php',
  'INDEX2.PHP',
  'about.html',
  'style.css',
  'wp-config.php',
  'wp-config.php.bak',
  'blog/index.php',
  'docs/index.html',
  'dir-named.php/x.php',
  'uploads/avatar.jpg',
  'images/photo.jpg',
  'uploads/evil.php',
  'uploads/sub/evil.php',
  'legacy.php8',
  '.git/config',
  '.hidden/x.php',
  '.env',
  '.well-known/security.txt',
  '.well-known/acme-challenge/tok',
  '.well-known/.hidden',
  '.well-known/shell.php',
  '.well-known/sub/shell.php',
  'evil.example/index.html',
  // the text "%FF" and "%c0%ae" would decode to if their bytes were read as U+FFFD: never picked
  '\uFFFD',
  '\uFFFD.php',
  'p/\uFFFD\uFFFD/index.html',
  // a WordPress network's shared files, and a folder of its own that a site's name would shadow
  'wp-admin/index.php',
  'wp-admin/options.php',
  'wp-login.php',
  'wp-includes/css/dashicons.css',
  'uploads/sites/2/pic.png',
  'uploads/sites/2/shell.php',
  'shop/wp-login.php',
];

beforeAll(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'warmpool-resolver-')));
  root = join(base, 'site');
  for (const file of files) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), '<?php // fixture');
  }
  mkdirSync(join(root, 'empty-dir'));
  mkdirSync(join(root, 'safe'));
  mkdirSync(join(base, 'outside'));
  writeFileSync(join(base, 'outside', 'evil.php'), '<?php');
  writeFileSync(join(base, 'outside', 'page.html'), 'x');
  symlinkSync(join(root, 'wp-config.php'), join(root, 'link-to-secret.css'));
  symlinkSync(join(root, 'uploads', 'avatar.jpg'), join(root, 'run.php'));
  symlinkSync(join(root, 'images', 'photo.jpg'), join(root, 'photo.php'));
  symlinkSync(join(root, 'INDEX2.PHP'), join(root, 'upper-link.php'));
  symlinkSync(join(base, 'outside', 'evil.php'), join(root, 'outside.php'));
  symlinkSync(join(base, 'outside', 'page.html'), join(root, 'outside.html'));
  symlinkSync(join(base, 'outside', 'evil.php'), join(root, 'outside-source.css'));
  mkdirSync(join(base, 'outside', 'docs'));
  writeFileSync(join(base, 'outside', 'docs', 'index.html'), 'docs');
  mkdirSync(join(base, 'outside', 'app'));
  writeFileSync(join(base, 'outside', 'app', 'index.php'), '<?php');
  symlinkSync(join(base, 'outside', 'docs'), join(root, 'docs-link'));
  symlinkSync(join(base, 'outside', 'app'), join(root, 'app-link'));
  symlinkSync(join(root, 'uploads', 'evil.php'), join(root, 'safe', 'alias.php'));
  symlinkSync(join(root, 'info.php'), join(root, 'safe', 'info-link.php'));
  symlinkSync(root, join(base, 'current')); // a deploy symlink as the configured root
  symlinkSync(join(root, 'legacy.php8'), join(root, 'legacy-link.css'));
  symlinkSync(join(root, '.env'), join(root, '.well-known', 'env-link.txt'));
  symlinkSync(join(root, '.well-known', 'shell.php'), join(root, 'safe', 'well-known-shell.php'));
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

const policy = createFilePolicy({ forbid: DEFAULT_STATIC_FORBID, allow: null });
const resolver = (options: Partial<ScriptResolverOptions> = {}) =>
  createScriptResolver({ root, no_exec: ['/uploads'], static_policy: policy, ...options });
const resolve = (target: string, options?: Partial<ScriptResolverOptions>) => resolver(options).resolve(target);

/** The verdict in one line, to keep the tables short. */
function summary(verdict: ScriptVerdict): string {
  switch (verdict.kind) {
    case 'script':
      return `script ${verdict.scriptName} info=${verdict.pathInfo} uri=${verdict.documentUri} q=${verdict.queryString}`;
    case 'static':
      return `static ${verdict.path}`;
    case 'redirect':
      return `redirect ${verdict.status} ${verdict.location}`;
    case 'forbidden':
    case 'invalid':
      return `${verdict.kind} ${verdict.reason}`;
    case 'not-found':
      return `not-found ${verdict.status}`;
  }
}

describe('script resolver: what runs', () => {
  it.each([
    ['/', 'script /index.php info= uri=/index.php q='],
    ['/?a=1&b', 'script /index.php info= uri=/index.php q=a=1&b'],
    ['/info.php', 'script /info.php info= uri=/info.php q='],
    ['/info.php?x=%20y', 'script /info.php info= uri=/info.php q=x=%20y'],
    // a fragment (sent by a broken client) is not the query's, as behind nginx
    ['/info.php?a=1#frag', 'script /info.php info= uri=/info.php q=a=1'],
    ['/info.php#frag', 'script /info.php info= uri=/info.php q='],
    ['/blog/', 'script /blog/index.php info= uri=/blog/index.php q='],
    // PATH_INFO after a real script, and the first real script wins
    ['/index.php/foo/bar?x=1', 'script /index.php info=/foo/bar uri=/index.php/foo/bar q=x=1'],
    ['/info.php/', 'script /info.php info=/ uri=/info.php/ q='],
    ['/dir-named.php/x.php', 'script /dir-named.php/x.php info= uri=/dir-named.php/x.php q='],
    // nothing there: try_files falls back to /index.php with the request's query
    ['/blog/hello-world/?utm=x', 'script /index.php info= uri=/index.php q=utm=x'],
    ['/empty-dir/', 'script /index.php info= uri=/index.php q='],
    // a path naming a script that is not there: 404 (nginx's location ~ \.php$), never the front controller
    ['/nope.php', 'not-found 404'],
    ['/blog/nope.PHP?x=1', 'not-found 404'],
    ['/nope.php/more', 'not-found 404'],
    ['/empty-dir/nope.php/', 'not-found 404'],
    ['/outside.php', 'not-found 404'],
    ['/blog/nope.php.html', 'script /index.php info= uri=/index.php q='],
  ])('%s → %s', async (target, expected) => {
    expect(summary(await resolve(target))).toBe(expected);
  });

  it('gives the real paths: the root through its deploy symlink, the script through its own', async () => {
    const verdict = await resolve('/safe/info-link.php/more', { root: join(base, 'current') });
    expect(verdict).toEqual({
      kind: 'script',
      scriptName: '/safe/info-link.php',
      scriptFilename: join(root, 'info.php'),
      pathInfo: '/more',
      documentRoot: root,
      documentUri: '/safe/info-link.php/more',
      queryString: '',
    });
  });
});

describe('script resolver: static files and redirects', () => {
  it.each([
    ['/style.css', 'static /style.css'],
    ['/about.html?v=2', 'static /about.html'],
    ['/docs/', 'static /docs/index.html'],
    ['/uploads/avatar.jpg', 'static /uploads/avatar.jpg'],
    ['/blog', 'redirect 301 /blog/'],
    ['/blog?x=1', 'redirect 301 /blog/?x=1'],
    ['/docs', 'redirect 301 /docs/'],
  ])('%s → %s', async (target, expected) => {
    expect(summary(await resolve(target))).toBe(expected);
  });

  it('a static verdict names the real file', async () => {
    expect(await resolve('/style.css')).toEqual({
      kind: 'static',
      path: '/style.css',
      filename: join(root, 'style.css'),
    });
  });
});

describe('script resolver: what never runs nor is sent', () => {
  it.each([
    // no_exec folders, also reached through a symlink from elsewhere
    ['/uploads/evil.php', 'forbidden no-exec'],
    ['/uploads/sub/evil.php', 'forbidden no-exec'],
    ['/uploads/evil.php/x', 'forbidden no-exec'],
    ['/safe/alias.php', 'forbidden no-exec'],
    // a script name linked to a JPEG (in an upload folder, or anywhere)
    ['/run.php', 'forbidden no-exec'],
    ['/photo.php', 'forbidden not-allowed-extension'],
    // dotfiles and dot-folders, scripts in them included
    ['/.git/config', 'forbidden dotfile'],
    ['/.env', 'forbidden dotfile'],
    ['/.hidden/x.php', 'forbidden dotfile'],
    // copies of source, and a harmless name linked to source
    ['/wp-config.php.bak', 'forbidden forbidden-extension'],
    ['/link-to-secret.css', 'forbidden forbidden-extension'],
  ])('%s → %s', async (target, expected) => {
    expect(summary(await resolve(target))).toBe(expected);
  });

  it('runs an extension only as configured: a case variant (X.PHP), asked or linked to, is refused, never run nor sent', async () => {
    // php-fpm's security.limit_extensions refuses ".PHP" too; an upload check comparing "php" lets it in
    expect(summary(await resolve('/INDEX2.PHP'))).toBe('forbidden not-allowed-extension');
    expect(summary(await resolve('/INDEX2.PHP/more'))).toBe('forbidden not-allowed-extension');
    expect(summary(await resolve('/upper-link.php'))).toBe('forbidden not-allowed-extension');
    expect(summary(await resolve('/INDEX2.PHP', { try_files: ['$uri', '=404'] }))).toBe(
      'forbidden not-allowed-extension',
    );
    // configured in capitals, it runs in capitals only
    expect(summary(await resolve('/INDEX2.PHP', { extensions: ['.PHP'] }))).toBe(
      'script /INDEX2.PHP info= uri=/INDEX2.PHP q=',
    );
  });

  it('cannot run a JPEG through cgi.fix_pathinfo: /uploads/avatar.jpg/x.php runs nothing', async () => {
    expect(summary(await resolve('/uploads/avatar.jpg/x.php'))).toBe('not-found 404');
    expect(summary(await resolve('/uploads/avatar.jpg/x.php', { try_files: ['$uri', '=404'] }))).toBe('not-found 404');
    // not split inside a segment either: ".php.jpg" is a JPEG
    expect(summary(await resolve('/avatar.php.jpg/x', { try_files: ['$uri', '=404'] }))).toBe('not-found 404');
  });

  it('never sends the source of a script of its own extensions, even when the static policy would allow them', async () => {
    // ".php8" is not in the static layer's forbid list: only the resolver knows it runs as PHP
    const options = { extensions: ['.php', '.php8'], try_files: ['$uri', '=404'] };
    expect(summary(await resolve('/legacy-link.css', options))).toBe('forbidden forbidden-extension');
    expect(summary(await resolve('/legacy.php8', options))).toMatch(/^script \/legacy\.php8/);
  });

  it('does not follow symlinks out of the root, and says which static file or script it did not follow', async () => {
    const told: string[] = [];
    const on_link_out = (file: string, target: string) => void told.push(`${file} -> ${target}`);
    expect(summary(await resolve('/outside.php', { try_files: ['$uri', '=404'], on_link_out }))).toBe('not-found 404');
    expect(summary(await resolve('/outside.html', { try_files: ['$uri', '=404'], on_link_out }))).toBe('not-found 404');
    expect(told).toEqual([`${realpathSync(root)}/outside.html -> ${realpathSync(join(base, 'outside', 'page.html'))}`]);
    // a script linked out (Debian's /var/lib/mediawiki links every script so): told apart, never run
    const scripts: string[] = [];
    const on_script_link_out = (file: string, target: string) => void scripts.push(`${file} -> ${target}`);
    expect(summary(await resolve('/outside.php', { try_files: ['$uri', '=404'], on_script_link_out }))).toBe(
      'not-found 404',
    );
    expect(scripts).toEqual([
      `${realpathSync(root)}/outside.php -> ${realpathSync(join(base, 'outside', 'evil.php'))}`,
    ]);
  });

  it('follows a static file into static_link_targets, never a script', async () => {
    const options = { try_files: ['$uri', '=404'], static_link_targets: [realpathSync(join(base, 'outside'))] };
    expect(summary(await resolve('/outside.html', options))).toBe('static /outside.html');
    expect(summary(await resolve('/outside.php', options))).toBe('not-found 404');
    // a folder linked there gives its static index, never its script index
    const folder = { ...options, try_files: ['$uri', '$uri/', '=404'], index: ['index.php', 'index.html'] };
    expect(summary(await resolve('/docs-link/', folder))).toBe('static /docs-link/index.html');
    expect(summary(await resolve('/docs-link', folder))).toBe('redirect 301 /docs-link/');
    expect(summary(await resolve('/app-link/', folder))).toBe('not-found 404');
    expect(summary(await resolve('/docs-link/', { ...folder, static_link_targets: [] }))).toBe('not-found 404');
    // the name it resolves to is checked there too: evil.php behind a .css name is never sent
    expect(summary(await resolve('/outside-source.css', options))).toBe('forbidden forbidden-extension');
  });

  it("runs a script through a link into script_link_targets (fastcgi.link_targets: nginx's alias), from its real path", async () => {
    const outside = realpathSync(join(base, 'outside'));
    const options = {
      try_files: ['$uri', '$uri/', '/index.php?$args'],
      // nginx: location /app-link/ { try_files $uri $uri/ /app-link/index.php$is_args$args; }
      fallbacks: { '/app-link/': '/app-link/index.php?$args', '/app-link/api/': '=404' },
      index: ['index.php'],
      script_link_targets: [join(outside, 'app')],
      static_link_targets: [join(outside, 'app')],
    };
    const verdict = await resolve('/app-link/', options);
    expect(summary(verdict)).toBe('script /app-link/index.php info= uri=/app-link/index.php q=');
    expect(verdict).toMatchObject({
      scriptFilename: join(outside, 'app', 'index.php'),
      documentRoot: realpathSync(root),
    });
    // a pretty URL under it reaches its front controller (fallbacks), one elsewhere the site's
    expect(summary(await resolve('/app-link/dashboard?x=1', options))).toBe(
      'script /app-link/index.php info= uri=/app-link/index.php q=x=1',
    );
    expect(summary(await resolve('/blog-post?x=1', options))).toBe('script /index.php info= uri=/index.php q=x=1');
    expect(summary(await resolve('/app-link/api/x', options))).toBe('not-found 404'); // the longest prefix wins
    expect(() =>
      createScriptResolver({ ...options, root, static_policy: policy, fallbacks: { 'app/': '/x.php' } }),
    ).toThrow(/fallbacks\.app\/.*prefixes are decoded paths/);
    // other links out stay refused: a script in a folder not named never runs
    expect(summary(await resolve('/outside.php', { ...options, try_files: ['$uri', '=404'] }))).toBe('not-found 404');
    // no_exec and dot-folders hold for the path asked
    expect(summary(await resolve('/app-link/index.php', { ...options, no_exec: ['/app-link'] }))).toBe(
      'forbidden no-exec',
    );
  });

  it.each([
    ['/../etc/passwd', 'invalid dot-segment'],
    ['/%2e%2e/%2e%2e/etc/passwd', 'invalid dot-segment'],
    ['/index.php%00.jpg', 'invalid control-char'],
    ['/%zz', 'invalid encoding'],
    ['/%09', 'invalid control-char'],
    ['/a%0d%0aLocation:%20x', 'invalid control-char'],
    // a backslash or trailing dot never hides a traversal from the checks
    ['/a%5Cb/../.env', 'invalid dot-segment'],
    ['/search/Mr./../../x', 'invalid dot-segment'],
    ['/a:b/%2e%2e/x', 'invalid dot-segment'],
  ])('%s → %s', async (target, expected) => {
    expect(summary(await resolve(target))).toBe(expected);
  });

  it('a colon never names a file (NTFS streams), but may follow a script (DokuWiki: /doku.php/wiki:syntax)', async () => {
    expect(summary(await resolve('/index.php::$DATA', { try_files: ['$uri', '=404'] }))).toBe('not-found 404');
    expect(summary(await resolve('/wp-config.php::$DATA', { try_files: ['$uri', '=404'] }))).toBe('not-found 404');
    expect(await resolve('/info.php/wiki:syntax')).toMatchObject({
      kind: 'script',
      scriptName: '/info.php',
      pathInfo: '/wiki:syntax',
    });
    expect(await resolve('/wiki:syntax')).toMatchObject({ kind: 'script', scriptName: '/index.php', pathInfo: '' });
  });
});

describe('script resolver: paths nginx accepts (merge_slashes, "." segments, Linux names)', () => {
  const FRONT = 'script /index.php info= uri=/index.php q=';
  it.each([
    // empty segments: one slash, as nginx's merge_slashes (sloppy WordPress home URLs: "//wp-content/...")
    ['//', FRONT],
    ['//about.html', 'static /about.html'],
    ['/blog//', 'script /blog/index.php info= uri=/blog/index.php q='],
    ['/pretty//x', FRONT],
    ['/wp-json/wp/v2/posts//1', FRONT],
    ['/info.php//x//y', 'script /info.php info=/x/y uri=/info.php/x/y q='],
    ['//.env', 'forbidden dotfile'],
    ['//uploads//evil.php', 'forbidden no-exec'],
    ['//wp-config.php.bak', 'forbidden forbidden-extension'],
    // "." segments dropped; ".." is still 400
    ['/pretty/./x', FRONT],
    ['/pretty/%2e/x', FRONT],
    ['/./style.css', 'static /style.css'],
    ['/info.php/./a', 'script /info.php info=/a uri=/info.php/a q='],
    ['/./.git/config', 'forbidden dotfile'],
    // redirects from the normalised path: "//evil.example" never becomes a Location to that host
    ['//evil.example', 'redirect 301 /evil.example/'],
    ['//blog?x=1', 'redirect 301 /blog/?x=1'],
    // a trailing dot or space names another file on Linux: a route for the front controller...
    ['/search/Mr.', FRONT],
    ['/blog/ends-with-dot.', FRONT],
    ['/p/abc%20', FRONT],
    ['/info.php/Mr.', 'script /info.php info=/Mr. uri=/info.php/Mr. q='],
    // ...but never a script, nor its source (Windows would run or send index.php for these)
    ['/index.php.', 'not-found 404'],
    ['/index.php%20', 'not-found 404'],
    ['/info.php../x', 'not-found 404'],
    ['/wp-config.php.', 'not-found 404'],
    // a backslash is a character of a name on Linux: a route, never a separator
    ['/a%5Cb', FRONT],
    ['/search/a\\b', FRONT],
    ['/..%5C..%5Cetc%5Cpasswd', 'forbidden dotfile'],
    ['/%zz', 'invalid encoding'],
  ])('%s → %s', async (target, expected) => {
    expect(summary(await resolve(target))).toBe(expected);
  });

  it('a path over 4096 characters is invalid (too-long): no file has such a name', async () => {
    expect(summary(await resolve(`/${'a'.repeat(4096)}`))).toBe('invalid too-long');
    expect(summary(await resolve(`/${'a'.repeat(4095)}`))).toBe(FRONT);
  });
});

describe('script resolver: bytes that are not UTF-8 ("%FF", Latin-1, overlong), as nginx passes them on', () => {
  const FRONT = 'script /index.php info= uri=/index.php q=';
  it.each([
    // no file is picked by such a path (files named as their U+FFFD text are there): the front controller
    ['/%FF', FRONT],
    ['/%ff%ff', FRONT],
    ['/p/%c0%ae%c0%ae/', FRONT],
    ['/%E9t%E9?x=1', 'script /index.php info= uri=/index.php q=x=1'],
    // the checks still see what it holds: a script name, a dotfile, "..", control bytes, a broken escape
    ['/%FF.php', 'not-found 404'],
    ['/%FF.php/x', 'not-found 404'],
    ['/missing.php/%FF', 'not-found 404'],
    // a script before the bytes runs, with them in PATH_INFO (as U+FFFD: what a UTF-8 app makes of them)
    ['/info.php/%FF', 'script /info.php info=/\uFFFD uri=/info.php/\uFFFD q='],
    ['/info.php/Caf%E9/x?a=1', 'script /info.php info=/Caf\uFFFD/x uri=/info.php/Caf\uFFFD/x q=a=1'],
    ['/info.php/%FF/.env', 'forbidden dotfile'],
    ['/.git/%FF', 'forbidden dotfile'],
    ['/%FF/../.env', 'invalid dot-segment'],
    ['/%FF/%2e%2e/x', 'invalid dot-segment'],
    ['/%FF%00', 'invalid control-char'],
    ['/%FF%zz', 'invalid encoding'],
  ])('%s → %s', async (target, expected) => {
    expect(summary(await resolve(target))).toBe(expected);
  });

  it('a fallback named after the path ($uri) never looks such a path up; =404 stays 404', async () => {
    expect(summary(await resolve('/%FF', { try_files: ['$uri', '/$uri'] }))).toBe('not-found 404');
    expect(summary(await resolve('/%FF', { try_files: ['$uri', '=404'] }))).toBe('not-found 404');
  });
});

describe('script resolver: /.well-known/ (RFC 8615), as nginx with `location ~ /\\.(?!well-known)`', () => {
  it.each([
    // its files are sent (certbot's webroot, security.txt), its other paths reach the front controller
    ['/.well-known/security.txt', 'static /.well-known/security.txt'],
    ['/.well-known/acme-challenge/tok', 'static /.well-known/acme-challenge/tok'],
    ['/.well-known/openid-configuration?x=1', 'script /index.php info= uri=/index.php q=x=1'],
    ['/.well-known/carddav', 'script /index.php info= uri=/index.php q='],
    ['/.well-known/', 'script /index.php info= uri=/index.php q='],
    // but no dotfile in it, no traversal out of it, no other folder of that name
    ['/.well-known/.hidden', 'forbidden dotfile'],
    ['/.well-known/env-link.txt', 'forbidden dotfile'],
    ['/.well-known/../.env', 'invalid dot-segment'],
    ['/blog/.well-known/security.txt', 'forbidden dotfile'],
    ['/.WELL-KNOWN/security.txt', 'forbidden dotfile'],
    // and nothing runs there, not even through a link: its files are written by others
    ['/.well-known/shell.php', 'forbidden no-exec'],
    ['/.well-known/shell.php/x', 'forbidden no-exec'],
    ['/.well-known/sub/shell.php', 'forbidden no-exec'],
    ['/safe/well-known-shell.php', 'forbidden no-exec'],
    ['/.well-known/missing.php', 'not-found 404'],
  ])('%s → %s', async (target, expected) => {
    expect(summary(await resolve(target))).toBe(expected);
  });

  it('stays a dot-folder when the static policy closes it', async () => {
    const closed = createFilePolicy({ forbid: DEFAULT_STATIC_FORBID, allow: null, well_known: false });
    expect(summary(await resolve('/.well-known/security.txt', { static_policy: closed }))).toBe('forbidden dotfile');
    expect(summary(await resolve('/.well-known/carddav', { static_policy: closed }))).toBe('forbidden dotfile');
  });
});

describe('script resolver: options', () => {
  it('split_path: false runs only whole paths', async () => {
    expect(summary(await resolve('/index.php/foo', { split_path: false }))).toBe(
      'script /index.php info= uri=/index.php q=',
    );
    expect(summary(await resolve('/index.php/foo', { split_path: false, try_files: ['$uri', '=404'] }))).toBe(
      'not-found 404',
    );
  });

  it('takes other extensions, index lists, try_files with $args, and a =NNN fallback', async () => {
    expect(summary(await resolve('/style.css', { extensions: ['.css'] }))).toBe(
      'script /style.css info= uri=/style.css q=',
    );
    expect(summary(await resolve('/docs/', { index: ['index.php'] }))).toBe(
      'script /index.php info= uri=/index.php q=',
    );
    expect(summary(await resolve('/a/b?x=1', { try_files: ['$uri', '/info.php?q=$uri&$args'] }))).toBe(
      'script /info.php info= uri=/info.php q=q=/a/b&x=1',
    );
    expect(summary(await resolve('/missing', { try_files: ['$uri', '=410'] }))).toBe('not-found 410');
    expect(summary(await resolve('/missing', { try_files: ['$uri', '/about.html'] }))).toBe('static /about.html');
  });

  it('rewrite: every path under a prefix runs its script before try_files, a title ending in .php included (MediaWiki short URLs)', async () => {
    const wiki = { rewrite: { '/wiki/': '/index.php', '/wiki/Special:': '/info.php?p=$uri&$args', '/gone/': '=410' } };
    expect(summary(await resolve('/wiki/Manual:LocalSettings.php', wiki))).toBe(
      'script /index.php info= uri=/index.php q=',
    );
    expect(summary(await resolve('/wiki/Dir/index.php?action=edit', wiki))).toBe(
      'script /index.php info= uri=/index.php q=action=edit',
    );
    // an existing file under the prefix is the script's too, as under nginx's location
    expect(summary(await resolve('/blog/', { rewrite: { '/blog/': '/info.php' } }))).toBe(
      'script /info.php info= uri=/info.php q=',
    );
    expect(summary(await resolve('/blog/index.php', { rewrite: { '/blog/': '/info.php' } }))).toBe(
      'script /info.php info= uri=/info.php q=',
    );
    // the longest prefix wins; a target may carry $uri and $args, or be =NNN
    expect(summary(await resolve('/wiki/Special:Search?go=1', wiki))).toBe(
      'script /info.php info= uri=/info.php q=p=/wiki/Special:Search&go=1',
    );
    expect(summary(await resolve('/gone/x.php', wiki))).toBe('not-found 410');
    // outside the prefixes try_files decides as before; dot segments are still refused
    expect(summary(await resolve('/nope.php', wiki))).toBe('not-found 404');
    expect(summary(await resolve('/wiki', wiki))).toBe('script /index.php info= uri=/index.php q=');
    expect(summary(await resolve('/wiki/Foo/.hidden', wiki))).toBe('forbidden dotfile');
    // a target that is not there is a 404, and a target that is a JPEG runs nothing
    expect(summary(await resolve('/wiki/x', { rewrite: { '/wiki/': '/missing.php' } }))).toBe('not-found 404');
    expect(summary(await resolve('/wiki/x', { rewrite: { '/wiki/': '/uploads/evil.php' } }))).toBe('forbidden no-exec');
  });

  it('multisite: a WordPress subdirectory network runs and sends the shared files under each site, as its nginx rules do', async () => {
    const network = { multisite: 'subdirectory' as const };
    const cases: [string, string][] = [
      ['/site2/wp-admin/', 'script /wp-admin/index.php info= uri=/wp-admin/index.php q='],
      ['/site2/wp-admin/options.php?page=x', 'script /wp-admin/options.php info= uri=/wp-admin/options.php q=page=x'],
      ['/site2/wp-login.php', 'script /wp-login.php info= uri=/wp-login.php q='],
      // nginx: rewrite /wp-admin$ $scheme://$host$uri/ permanent: the site's folder kept
      ['/site2/wp-admin?x=1', 'redirect 301 /site2/wp-admin/?x=1'],
      ['/site2/wp-includes/css/dashicons.css', 'static /wp-includes/css/dashicons.css'],
      ['/site2/uploads/sites/2/pic.png', 'script /index.php info= uri=/index.php q='], // not a /wp- path
      ['/site2/info.php/more', 'script /info.php info=/more uri=/info.php/more q='],
      // the site's pages go to the front controller as before (REQUEST_URI tells WordPress the site)
      ['/site2/', 'script /index.php info= uri=/index.php q='],
      ['/site2/hello-world/', 'script /index.php info= uri=/index.php q='],
      ['/site2/wp-json/wp/v2/posts', 'script /index.php info= uri=/index.php q='],
      // a path that is there as asked is not rewritten; nor is a script's PATH_INFO
      ['/shop/wp-login.php', 'script /shop/wp-login.php info= uri=/shop/wp-login.php q='],
      ['/index.php/wp-admin', 'script /index.php info=/wp-admin uri=/index.php/wp-admin q='],
      // every rule applies to the path it becomes
      ['/site2/wp-config.php.bak', 'forbidden forbidden-extension'],
      ['/site2/wp-nope.php', 'not-found 404'],
      ['/site2/.git/config', 'forbidden dotfile'],
      ['/site2/wp-admin/../../x', 'invalid dot-segment'],
    ];
    for (const [target, expected] of cases)
      expect([target, summary(await resolve(target, network))]).toEqual([target, expected]);
    // no_exec on the path it becomes: a script planted among a site's uploads never runs
    const uploads = { multisite: 'subdirectory' as const, no_exec: ['/wp-admin'] };
    expect(summary(await resolve('/site2/wp-admin/options.php', uploads))).toBe('forbidden no-exec');
    // a rewrite prefix wins, on the path as asked
    expect(
      summary(await resolve('/wiki/Setup.php', { multisite: 'subdirectory', rewrite: { '/wiki/': '/info.php' } })),
    ).toBe('script /info.php info= uri=/info.php q=');
    // without it, nothing changes
    expect(summary(await resolve('/site2/wp-admin/'))).toBe('script /index.php info= uri=/index.php q=');
    expect(summary(await resolve('/site2/wp-login.php'))).toBe('not-found 404');
  });

  it('without the fallback script, a miss is a 404', async () => {
    expect(summary(await resolve('/x', { try_files: ['$uri', '$uri/', '/no-such-front-controller.php'] }))).toBe(
      'not-found 404',
    );
  });

  it('refuses bad options, naming them', () => {
    const bad = (options: Partial<ScriptResolverOptions>, message: RegExp) =>
      expect(() => resolver(options)).toThrow(message);
    expect(() => resolver({ try_files: [] })).toThrow(WarmpoolError);
    bad({ try_files: [] }, /"try_files": must list at least the fallback/);
    bad({ try_files: ['$uri', 'index.php'] }, /"try_files": the last entry is the fallback/);
    bad({ try_files: ['$uri?x', '/index.php'] }, /"try_files": entries before the last/);
    bad({ extensions: ['php'] }, /"extensions": must hold extensions with their dot/);
    bad({ extensions: [] }, /"extensions": must list at least one/);
    bad({ no_exec: ['uploads'] }, /"no_exec": must hold root-relative folders/);
    bad({ index: ['../index.php'] }, /"index": must hold plain file names/);
    bad({ root: '' }, /"root"/);
    bad(
      { multisite: 'subdomain' as 'subdirectory' },
      /"multisite": is "subdirectory", for a WordPress network whose sites are folders/,
    );
    bad({ rewrite: { wiki: '/index.php' } }, /"rewrite\.wiki": prefixes are decoded paths such as "\/wiki\/"/);
    for (const prefix of ['//d/', '/e%2fx/', '/a/../b/', '/./w/', '/w?x'])
      bad({ rewrite: { [prefix]: '/index.php' } }, /prefixes are decoded paths/);
    bad({ rewrite: { '/wiki/': 'index.php' } }, /"rewrite\.\/wiki\/": each prefix leads to a script path/);
    for (const target of ['/static/../x.php', '/../../etc/passwd', '/.git/x.php'])
      bad({ rewrite: { '/wiki/': target } }, /"rewrite\.\/wiki\/": the script must be a plain path under the root/);
  });
});
