#!/usr/bin/env bash
# Installs what warmpool needs on a Debian/Ubuntu machine with Node 20+, when it is missing:
# php-cli (+ the extensions the tests and examples use), php-cgi and php-fpm (classic mode's FastCGI
# tests), DokuWiki, Adminer, and WordPress and phpMyAdmin with MariaDB (classic mode's end-to-end
# apps), nginx (the tests put one in front of warmpool), htpasswd (apache2-utils: auth_basic's
# tests), pebble and openssl (the ACME tests), pnpm (the version package.json pins), the workspace
# dependencies, and a build. Quiet and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=$(node -p "require('./package.json').packageManager.split('@')[1]")
export DEBIAN_FRONTEND=noninteractive
say() { printf 'setup: %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# all (default): what the examples and the tests need, the workspace and a build; serve: php-cli,
# the workspace and a build (`npm start`); system: the system packages only (`pnpm test`)
mode=${1:-all}
case "$mode" in
  all | serve | system) ;;
  *)
    echo "usage: scripts/setup.sh [all|serve|system]" >&2
    exit 2
    ;;
esac

need=()
command -v php >/dev/null 2>&1 || need+=(php-cli)
wp_need=()
# `npm start` serves the hello example, which needs php-cli alone; the rest is what the tests need
if [ "$mode" != serve ]; then
  command -v php-cgi >/dev/null 2>&1 || need+=(php-cgi)
  # Debian names the binary php-fpm<version> and puts it in /usr/sbin
  compgen -G '/usr/sbin/php-fpm*' >/dev/null || command -v php-fpm >/dev/null 2>&1 || need+=(php-fpm)
  php -m 2>/dev/null | grep -qix 'mbstring' || need+=(php-mbstring)
  [ -f /usr/share/php/Nyholm/Psr7/autoload.php ] || need+=(php-nyholm-psr7)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v pgrep >/dev/null 2>&1 || need+=(procps)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v pebble >/dev/null 2>&1 || need+=(pebble) # the ACME test CA of the automatic-HTTPS tests
  # nginx: the forwarded-header tests put a real nginx in front of warmpool serve
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
  # htpasswd: auth_basic's tests read the files it makes (bcrypt with -B), as nginx's users have them
  command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
  # classic mode's end-to-end tests serve copies of Debian's DokuWiki and Adminer (Adminer logs in to
  # SQLite); listed after php-cgi and php-fpm so that their "php" dependency takes those, never apache2
  php -m 2>/dev/null | grep -qix 'pdo_sqlite' || need+=(php-sqlite3)
  # APCu: managed php-cgi warns that each of its processes has an APCu of its own (a pool test)
  php -m 2>/dev/null | grep -qix 'apcu' || need+=(php-apcu)
  [ -f /usr/share/dokuwiki/doku.php ] || need+=(dokuwiki)
  [ -f /usr/share/adminer/adminer.php ] || need+=(adminer)
  # WordPress's end-to-end test: Debian's WordPress and its twentytwentyone theme, on a MariaDB the test
  # starts itself (the server binaries only: no service is installed or started). Installed after the
  # rest so that nginx, already there, is WordPress's "httpd" and apache2 is never pulled in.
  [ -f /usr/share/wordpress/wp-settings.php ] || wp_need+=(wordpress)
  [ -d /usr/share/wordpress/wp-content/themes/twentytwentyone ] || wp_need+=(wordpress-theme-twentytwentyone)
  [ -x /usr/sbin/mariadbd ] || wp_need+=(mariadb-server-core)
  command -v my_print_defaults >/dev/null 2>&1 || wp_need+=(mariadb-client-core) # mariadb-install-db runs it
  php -m 2>/dev/null | grep -qix 'mysqli' || wp_need+=(php-mysql)
  # phpMyAdmin's end-to-end test serves Debian's package where it lies (its links into
  # /usr/share/javascript included); its database setup (dbconfig-common) is declined: the test logs
  # in to its own MariaDB
  [ -f /usr/share/phpmyadmin/index.php ] || wp_need+=(phpmyadmin)
fi
if [ ${#need[@]} -gt 0 ] || [ ${#wp_need[@]} -gt 0 ]; then as_root apt-get update -qq; fi
if [[ " ${wp_need[*]} " == *" phpmyadmin "* ]]; then
  echo 'phpmyadmin phpmyadmin/dbconfig-install boolean false' | as_root debconf-set-selections
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing system packages: ${need[*]}"
  as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ${#wp_need[@]} -gt 0 ]; then
  say "installing system packages: ${wp_need[*]}"
  as_root apt-get install -y -qq --no-install-recommends "${wp_need[@]}" >/dev/null
fi

if [ "$mode" = system ]; then exit 0; fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm -v 2>/dev/null)" != "$PNPM_VERSION" ]; then
  say "installing pnpm ${PNPM_VERSION}"
  npm install -g --silent "pnpm@${PNPM_VERSION}" >/dev/null 2>&1 \
    || COREPACK_INTEGRITY_KEYS=0 corepack enable pnpm
fi

say "$(php -r 'echo "PHP ", PHP_VERSION;'), node $(node -v), pnpm $(pnpm -v)"
pnpm install --frozen-lockfile --reporter=silent
pnpm build --output-logs=errors-only >/dev/null
say "ready"
