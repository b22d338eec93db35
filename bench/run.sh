#!/usr/bin/env bash
# One command for the warmpool benchmarks: installs what is missing (nginx, php-fpm, wrk, Lumen,
# php-mbstring via apt-get), checks the workspace is built, then runs bench/run.mjs with the same
# flags (bash bench/run.sh --help). Whatever happens — Ctrl-C, an error, the Node harness killed —
# the trap below kills every process tree the harness started (their group leaders are listed in
# $BENCH_TMP/pgids) and removes the temp dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

for arg in "$@"; do
  if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then exec node "$here/run.mjs" --help; fi
done

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# 1. system packages: only the missing ones
php_minor="$(php -n -r 'echo PHP_MAJOR_VERSION . "." . PHP_MINOR_VERSION;' 2>/dev/null || true)"
need=()
command -v php >/dev/null || need+=(php-cli)
[[ -x /usr/sbin/nginx ]] || need+=(nginx)
[[ -n "$php_minor" && -x "/usr/sbin/php-fpm$php_minor" ]] || need+=(php-fpm)
command -v wrk >/dev/null || need+=(wrk)
[[ -f /usr/share/php/Laravel/Lumen/autoload.php ]] || need+=(php-laravel-lumen-framework)
php -n -r 'exit(extension_loaded("mbstring") ? 0 : 1);' 2>/dev/null \
  || [[ -n "$php_minor" && -f "/etc/php/$php_minor/mods-available/mbstring.ini" ]] || need+=(php-mbstring)
if (( ${#need[@]} > 0 )); then
  echo "installing: ${need[*]}" >&2
  as_root apt-get install -y --no-install-recommends "${need[@]}" >&2 \
    || { as_root apt-get update >&2 && as_root apt-get install -y --no-install-recommends "${need[@]}" >&2; }
fi

# 2. the workspace packages the Node contenders load from dist/
if [[ ! -f "$repo/packages/fastify/dist/index.js" || ! -f "$repo/packages/pool/dist/index.js" ]]; then
  echo "building the workspace (pnpm build)" >&2
  (cd "$repo" && pnpm build >&2)
fi

# 3. run, with a trap that kills whatever the harness leaves behind
export BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/warmpool-bench.XXXXXX")"
keep=0
for arg in "$@"; do [[ "$arg" == "--keep" ]] && keep=1; done

kill_tree() { # pid: SIGKILL it and every descendant (children first found via ps)
  local pid=$1 child
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill_tree "$child"; done
  kill -KILL "$pid" 2>/dev/null || true
}
ours() { # pid: is it still one of ours? (its command line names the temp dir or the bench folder)
  local cmdline
  cmdline="$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$BENCH_TMP"* || "$cmdline" == *"$here/"* ]]
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [[ -f "$BENCH_TMP/pgids" ]]; then
    while read -r pgid; do
      [[ -n "$pgid" ]] && ours "$pgid" || continue
      kill_tree "$pgid"
      kill -KILL -- "-$pgid" 2>/dev/null || true
    done < "$BENCH_TMP/pgids"
  fi
  if (( keep == 0 )); then rm -rf "$BENCH_TMP"; else echo "temp dir kept: $BENCH_TMP" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

node "$here/run.mjs" "$@"
