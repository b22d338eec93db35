// A static file that is a symlink out of the root (and out of static.link_targets) is not served:
// the page that asked for it then gets PHP's answer or a 404, which looks like a broken app (Debian's
// phpMyAdmin got its login page for jquery.min.js). This says so in the log, once per file, naming
// the option that serves it. Shared by the static layer and classic mode's script resolver, which
// each meet such links; silent until a logger is attached.
import type { FastifyBaseLogger } from 'fastify';

/** Files warned about at most: a tree full of such links does not fill the log or the memory. */
const MAX_WARNED = 100;

const STATIC_LINKED_OUT =
  'warmpool: a static file links out of the root and is not served; list the folder it leads to in static.link_targets (http.static.link_targets in warmpool.yaml) to serve it';
const SCRIPT_LINKED_OUT =
  "warmpool: a script links out of the root and is not run, so its request is a 404; list the folder it leads to in fastcgi.link_targets to run its scripts (an app linked in under a path, as nginx's alias: docs/CLASSIC.md), or serve that folder as the root when it holds the whole app (Debian's MediaWiki: /usr/share/mediawiki, not /var/lib/mediawiki); http.static.link_targets never runs a script";

const ROOT_MOVED_AWAY =
  "warmpool: a static root is now a link of one user's to a folder of another's (its owner may have put a link to / in its place), so no file is served from it: a root is only followed through a link to its owner's own folder (nginx's disable_symlinks if_not_owner)";

const SWAPPED_WHEN_OPENED =
  'warmpool: a static file was another one when opened (a name switched to a link between the check and the open: someone with write access to the root may be trying to read files outside it), and was refused';

export class LinkOutWarnings {
  #logger: FastifyBaseLogger | null = null;
  readonly #warned = new Set<string>();

  attach(logger: FastifyBaseLogger): void {
    this.#logger = logger;
  }

  /** `file` (as asked, under the root) resolves to `target`, outside every folder it may lead to. */
  readonly note = (file: string, target: string): void => this.#once(file, target, STATIC_LINKED_OUT);

  /** A script `file` (as asked, under the root) resolves to `target`, outside the root: never run. */
  readonly noteScript = (file: string, target: string): void => this.#once(file, target, SCRIPT_LINKED_OUT);

  /** The root `root` now resolves to `target` through a link to another owner's folder: not served from. */
  readonly noteRoot = (root: string, target: string): void => this.#once(root, target, ROOT_MOVED_AWAY, 'error');

  /** A file checked under the root was another when opened (`target`: what was opened): refused. */
  readonly noteSwapped = (file: string, target: string): void => this.#once(file, target, SWAPPED_WHEN_OPENED, 'error');

  /** Each file said once, and at most MAX_WARNED of them. */
  #once(file: string, target: string, message: string, level: 'warn' | 'error' = 'warn'): void {
    if (this.#logger === null || this.#warned.size >= MAX_WARNED || this.#warned.has(file)) return;
    this.#warned.add(file);
    this.#logger[level]({ file, target }, message);
  }
}
