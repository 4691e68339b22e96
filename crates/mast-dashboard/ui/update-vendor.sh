#!/usr/bin/env bash
# Re-fetches the vendored graph library from npm at the version pinned in package-lock.json
# and copies it into vendor/ (committed, so building Mast needs no Node). Run after changing
# the version in package.json (`npm install --package-lock-only cytoscape@X` first).
set -euo pipefail
cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
npm ci --prefix "$work" --ignore-scripts --no-audit --no-fund
mkdir -p vendor
cp "$work/node_modules/cytoscape/dist/cytoscape.min.js" vendor/cytoscape.min.js
cp "$work/node_modules/cytoscape/LICENSE" vendor/cytoscape.LICENSE
version="$(node -p "require('$work/node_modules/cytoscape/package.json').version")"
echo "vendor/cytoscape.min.js is cytoscape $version"
