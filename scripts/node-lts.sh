#!/usr/bin/env bash
# Prints the folder of a Node.js LTS binary (its bin/node), fetching it once into .cache/: CI runs the
# tests a second time on it, so that code written on the machine's Node 20 is known to run on the
# Node an operator installs today. The binary comes from the npm registry (the node-linux-<arch>
# package is Node's official build, packed), so nothing but npm is needed.
#
# Usage: bash scripts/node-lts.sh            → e.g. /repo/.cache/node-v26.12.1/bin
#        PATH="$(bash scripts/node-lts.sh):$PATH" npx vitest run
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=26.12.1
case "$(uname -m)" in
  x86_64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *)
    echo "node-lts: no Node.js build on the npm registry for $(uname -m)" >&2
    exit 1
    ;;
esac

DEST="$PWD/.cache/node-v${VERSION}"
if [ ! -x "$DEST/bin/node" ]; then
  printf 'node-lts: fetching Node.js %s (npm package node-linux-%s)\n' "$VERSION" "$ARCH" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-${ARCH}@${VERSION}" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$(dirname "$DEST")"
  rm -rf "$DEST"
  mv "$tmp/package" "$DEST"
fi
got=$("$DEST/bin/node" --version)
if [ "$got" != "v${VERSION}" ]; then
  echo "node-lts: $DEST/bin/node says $got, expected v${VERSION}: remove $DEST and run again" >&2
  exit 1
fi
echo "$DEST/bin"
