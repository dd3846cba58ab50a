#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# make install into a temporary DESTDIR, then a tiny C program
# (tests/pkg/consumer/) built against the installed tree through pkg-config
# and through CMake (find_package(agentsync): the shared and the static
# library), and run. Also checks that every file the install promises is
# there: programs, libagentsync.so.0 with its soname, the static library,
# headers, agentsync.pc, the CMake package, man pages, completions, the
# systemd unit and the example config.
#
# Usage: tests/pkg/install_test.sh BUILD_DIR (ctest passes it).
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/ags-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
dest="$tmp/root"
DESTDIR="$dest" cmake --install "$build" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
root="$dest$prefix"
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
[ -n "$libdir" ] || libdir=lib
case "$libdir" in /*) lib="$dest$libdir" ;; *) lib="$root/$libdir" ;; esac

# Nothing may be installed outside DESTDIR's prefix.
outside=$(sed -n 's/^-- \(Installing\|Up-to-date\): //p' "$tmp/install.log" | grep -v "^$dest/" || true)
[ -z "$outside" ] || fail "installed outside DESTDIR: $outside"

for f in bin/agentsyncd bin/agentsync include/agentsync/agentsync.h include/agentsync/node.h \
	include/agentsync/agent.h include/agentsync/event.h include/agentsync/certs.h \
	include/agentsync/token.h share/man/man1/agentsync.1 share/man/man5/agentsync.json.5 \
	share/man/man8/agentsyncd.8 share/bash-completion/completions/agentsync \
	share/zsh/vendor-completions/_agentsync share/doc/agentsync/examples/agentsync.json \
	share/doc/agentsync/openapi.yaml share/doc/agentsync/pattern.schema.json; do
	[ -f "$root/$f" ] || fail "not installed: $prefix/$f"
done
for f in libagentsync.a pkgconfig/agentsync.pc cmake/agentsync/agentsyncConfig.cmake \
	cmake/agentsync/agentsyncConfigVersion.cmake; do
	[ -f "$lib/$f" ] || fail "not installed: $lib/$f"
done
unit=$(find "$dest" -name agentsyncd.service)
[ -n "$unit" ] || fail "agentsyncd.service not installed"
grep -q "^ExecStart=$prefix/bin/agentsyncd " "$unit" || fail "the unit does not start $prefix/bin/agentsyncd"

# The shared library: soname libagentsync.so.0, the chain of links, the API only.
[ -L "$lib/libagentsync.so" ] && [ -L "$lib/libagentsync.so.0" ] || fail "libagentsync.so links missing"
soname=$(objdump -p "$lib/libagentsync.so.0" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libagentsync.so.0 ] || fail "soname is '$soname', not libagentsync.so.0"
internal=$(nm -D --defined-only "$lib/libagentsync.so.0" | awk '{print $3}' | grep -v '^ags_' | grep -v '^_' || true)
[ -z "$internal" ] || fail "libagentsync.so exports more than ags_*: $internal"

v=$("$root/bin/agentsyncd" --version) && [[ $v == "agentsyncd "* ]] || fail "installed agentsyncd does not run"
v=$("$root/bin/agentsync" --version) && [[ $v == "agentsync "* ]] || fail "installed agentsync does not run"
man -l "$root/share/man/man8/agentsyncd.8" >/dev/null 2>&1 || fail "man cannot read agentsyncd.8"

# 1. pkg-config (the deps' .pc files from the system, agentsync's from DESTDIR).
export PKG_CONFIG_SYSROOT_DIR="$dest"
sys_pc=$(pkg-config --variable pc_path pkg-config)
export PKG_CONFIG_LIBDIR="$lib/pkgconfig:$sys_pc"
ver=$(pkg-config --modversion agentsync)
[ "$ver" = "$("$root/bin/agentsync" --version | awk '{print $2}')" ] || fail "agentsync.pc version $ver"
# shellcheck disable=SC2046
cc -std=c17 -Wall -Werror -o "$tmp/consumer_pc" "$src/tests/pkg/consumer/main.c" \
	$(pkg-config --cflags --libs agentsync) || fail "cc with pkg-config agentsync"
mkdir "$tmp/d1"
out=$(LD_LIBRARY_PATH="$lib" "$tmp/consumer_pc" "$tmp/d1") || fail "consumer (pkg-config) failed: $out"
case "$out" in "ok $ver "*" installed") ;; *) fail "consumer (pkg-config) printed: $out" ;; esac
libs=$(LD_LIBRARY_PATH="$lib" ldd "$tmp/consumer_pc")
grep -q "$lib/libagentsync.so.0" <<<"$libs" ||
	fail "the pkg-config build does not use the installed libagentsync.so.0: $libs"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR

# 2. CMake: find_package(agentsync) -> agentsync::agentsync and agentsync::agentsync_static.
cmake -S "$src/tests/pkg/consumer" -B "$tmp/cbuild" -DCMAKE_PREFIX_PATH="$root" \
	-DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "cmake of the consumer"; }
cmake --build "$tmp/cbuild" >"$tmp/cbuild.log" 2>&1 || { cat "$tmp/cbuild.log"; fail "build of the consumer"; }
mkdir "$tmp/d2" "$tmp/d3"
out=$("$tmp/cbuild/consumer_shared" "$tmp/d2") || fail "consumer_shared failed: $out"
case "$out" in "ok $ver "*" installed") ;; *) fail "consumer_shared printed: $out" ;; esac
libs=$(ldd "$tmp/cbuild/consumer_shared")
grep -q "$lib/libagentsync.so.0" <<<"$libs" ||
	fail "consumer_shared does not use the installed libagentsync.so.0: $libs"
out=$("$tmp/cbuild/consumer_static" "$tmp/d3") || fail "consumer_static failed: $out"
case "$out" in "ok $ver "*" installed") ;; *) fail "consumer_static printed: $out" ;; esac
libs=$(ldd "$tmp/cbuild/consumer_static")
if grep -q libagentsync <<<"$libs"; then
	fail "consumer_static links libagentsync.so"
fi
echo "install: 1 passed, 0 failed"
