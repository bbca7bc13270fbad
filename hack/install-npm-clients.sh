#!/usr/bin/env bash
# Installs the npm clients the client suite drives (pnpm 10, yarn classic 1.22,
# yarn berry 4; npm itself ships with Node.js) into tools/npm-clients, at the
# versions pinned in hack/npm-clients/package-lock.json. Skips the install when
# that lock file has not changed since the last one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/tools/npm-clients"
src="$root/hack/npm-clients"
command -v npm >/dev/null || { echo "npm (Node.js) is required for the npm client suite" >&2; exit 1; }
if [ -f "$dest/package-lock.json" ] && cmp -s "$src/package-lock.json" "$dest/package-lock.json" && [ -d "$dest/node_modules" ]; then
  exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
(cd "$dest" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
echo "npm clients installed in $dest: npm $(npm --version), pnpm $(node "$dest/node_modules/pnpm/bin/pnpm.cjs" --version), yarn $(node "$dest/node_modules/yarn/bin/yarn.js" --version), yarn $(node "$dest/node_modules/@yarnpkg/cli-dist/bin/yarn.js" --version)"
