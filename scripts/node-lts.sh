#!/usr/bin/env bash
# Prints the folder of a Node.js LTS binary (its bin/node), fetching it once into .cache/: CI runs the
# tests again on Node 22 and 26, so that code written on the machine's Node 20 is known to run on
# the Node an operator installs today. The binary comes from the npm registry (the node-linux-<arch>
# package is Node's official build, packed), so nothing but npm is needed.
#
# Usage: bash scripts/node-lts.sh [22|24|26]    → e.g. /repo/.cache/node-v26.12.1/bin (26 by default)
#        PATH="$(bash scripts/node-lts.sh 22):$PATH" npx vitest run
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-26}" in
  22) VERSION=22.23.5 ;;
  24) VERSION=24.22.3 ;;
  26) VERSION=26.12.1 ;;
  *)
    echo "node-lts: no pinned version for Node ${1}: use 22, 24 or 26" >&2
    exit 1
    ;;
esac
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
