// A worker command or php-cgi that is not there, or php's script that is not, found before any
// worker boots: `config check` passed such a file and serve then failed at its first worker with
// PHP's "Could not open input file: worker.php", naming no key, line or the folder it looked in.
import { InvalidOptionError } from '@warmpool/fastify';
import { buildCgiEnv, commandProblem, parseCommand } from '@warmpool/pool';
import { locateOptionError, type ConfigError, type LoadedConfig, type ServerOptions } from '@warmpool/config';
import { runsPhpItself } from './root-php.js';

/** Each site's command problem at its key and line (the site's own, or the inherited one). */
export function phpCommandProblems(server: Pick<ServerOptions, 'sites'>, loaded: LoadedConfig): ConfigError['errors'] {
  const errors: ConfigError['errors'][number][] = [];
  for (const site of server.sites) {
    const { fastcgi, command, cwd, env } = site.plugin;
    if (!runsPhpItself(site)) continue;
    let argv: string[];
    try {
      argv = parseCommand(fastcgi === undefined ? command! : (fastcgi.command ?? 'php-cgi'));
    } catch {
      continue; // a command that does not parse is the option check's to report
    }
    // PATH as the workers get it: the server's, or server.env's
    const problem = commandProblem(argv, buildCgiEnv(env ?? {}, process.env, false), cwd);
    if (problem === null) continue;
    const error = new InvalidOptionError(fastcgi === undefined ? 'command' : 'fastcgi.command', problem);
    const located = locateOptionError(error, loaded, site);
    if (located !== null) errors.push(...located.errors);
  }
  return errors;
}
