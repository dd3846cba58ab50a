#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the Debian packages (make deb): agentsync, libagentsync0,
# libagentsync-dev (and their -dbgsym), from a copy of the source tree
# (the files git tracks, plus new ones it does not ignore) in OUT/src, with
# dpkg-buildpackage and debhelper (debian/). The .deb files land in OUT
# (default build-deb). Needs the build dependencies of debian/control
# (scripts/install-deps.sh installs them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build-deb}
case "$out" in /*) ;; *) out="$top/$out" ;; esac
cd "$top"
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
src="$out/src/agentsync-$version"
rm -rf "$out"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
	[ -e "$f" ] && printf '%s\0' "$f"
done | tar --null -T - -cf - | tar -xf - -C "$src"
echo "deb: building agentsync $version in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc 2>/dev/null || echo 2)") >"$out/build.log" 2>&1 || {
	tail -n 60 "$out/build.log" >&2
	echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
	exit 1
}
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/ 2>/dev/null || true
ls -1 "$out"/*.deb
