#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The npm package as a user gets it: `npm pack` of this checkout, then, in a
# fresh project outside the repository, `npm install <tarball>` (which builds
# the addon from the tarball's csrc/ with nothing downloaded) and a program
# that uses the installed package by its name: two QUICServers over real QUIC
# on 127.0.0.1, one pattern from a to b.
set -euo pipefail
pkg=$(cd "$(dirname "$0")/../.." && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ags-npm-pack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$pkg"
npm pack --pack-destination "$tmp" --silent --no-fund >"$tmp/pack.out"
tarball="$tmp/$(tail -n 1 "$tmp/pack.out")"
[ -f "$tarball" ] || { echo "FAIL: npm pack made no tarball (said: $(cat "$tmp/pack.out"))"; exit 1; }
[ ! -e "$pkg/csrc" ] || { echo "FAIL: npm pack left csrc/ in the checkout"; exit 1; }
tar tzf "$tarball" >"$tmp/list"
for f in package/package.json package/index.js package/index.d.ts package/scripts/build.js \
	package/csrc/CMakeLists.txt package/csrc/bindings/node/src/addon.c; do
	grep -qx "$f" "$tmp/list" || { echo "FAIL: the tarball has no $f"; exit 1; }
done
if grep -qE '^package/(build|node_modules|test)/' "$tmp/list"; then
	echo "FAIL: the tarball carries build output, node_modules or tests:"
	grep -E '^package/(build|node_modules|test)/' "$tmp/list" | head
	exit 1
fi
echo "tarball: $(basename "$tarball"), $(wc -l <"$tmp/list") files, $(du -k "$tarball" | cut -f1) KiB"

mkdir "$tmp/app"
cd "$tmp/app"
printf '{"name":"app","version":"1.0.0","private":true}\n' >package.json
AGENTSYNC_JOBS="${AGENTSYNC_JOBS:-2}" npm install --no-audit --no-fund --loglevel=error "$tarball" \
	>"$tmp/install.log" 2>&1 || { echo "FAIL: npm install of the tarball"; tail -40 "$tmp/install.log"; exit 1; }
[ -f node_modules/agentsync/build/bindings/node/agentsync.node ] ||
	[ -n "$(find node_modules/agentsync -name agentsync.node -print -quit)" ] ||
	{ echo "FAIL: npm install built no agentsync.node"; exit 1; }
cp "$here/app.js" .
env -u AGENTSYNC_ADDON node app.js
