// PHP that warmpool starts itself runs as warmpool's user unless server.user says otherwise. Started
// as root (systemd's default for a service), that is root: php-fpm refuses such a pool outright
// (unless run with -R). A warning, not a refusal: containers and throwaway machines run as root on
// purpose, and the quick start runs there too.
import type { LoadedConfig, ServerOptions, SiteOptions } from '@warmpool/config';

export interface RootPhpWarning {
  key: string;
  file: string;
  line: number;
  col: number;
  message: string;
}

/** One warning per site whose PHP processes would run as root; none when not root. */
export function rootPhpWarnings(
  server: Pick<ServerOptions, 'sites'>,
  loaded: LoadedConfig,
  uid: number | undefined = process.getuid?.(),
): RootPhpWarning[] {
  if (uid !== 0) return [];
  const warnings: RootPhpWarning[] = [];
  for (const site of server.sites) {
    if (!runsPhpItself(site) || site.plugin.pool?.uid !== undefined) continue;
    const prefix = site.index === null ? '' : `sites[${site.index}].`;
    const at = loaded.positionOf(`${prefix}server`) ??
      (site.index === null ? null : loaded.positionOf(`sites[${site.index}]`)) ??
      loaded.positionOf('server') ?? { file: loaded.file, line: 1, col: 1 };
    const which = site.hosts === null ? 'the PHP processes' : `the PHP processes of ${site.hosts.join(', ')}`;
    warnings.push({
      key: `${prefix}server.user`,
      file: at.file,
      line: at.line,
      col: at.col,
      message: `not set, and warmpool runs as root: ${which} run as root, so a flaw in the app (an upload, a plugin) is root on this machine; set server.user (e.g. www-data), as php-fpm refuses root pools`,
    });
  }
  return warnings;
}

/** Worker loops and managed php-cgi; a site that passes to php-fpm runs php-fpm's processes. */
function runsPhpItself(site: SiteOptions): boolean {
  const { fastcgi, command } = site.plugin;
  return fastcgi === undefined ? command !== undefined : fastcgi.pass === undefined;
}
