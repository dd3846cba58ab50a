#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The Debian packages, end to end (make test-deb; .ci/run). Builds them
# (scripts/deb.sh), runs lintian on them (an error or a warning fails),
# installs them with `apt-get install ./...deb` on this machine, checks what
# the install did (the user agentsync, the conffile and its mode, the unit:
# systemd-analyze verify with the installed man pages), starts the installed
# daemon as the unit would (as agentsync, on a free port), checks /healthz,
# the CLI against it and the -dev package (a program built with pkg-config
# against /usr), stops it, and purges the packages.
#
# It must leave the machine as it found it: it refuses to run when one of
# the packages is installed already, and a trap purges them, removes the
# user if the test made it, and removes /etc/agentsync and /var/lib/agentsync,
# whether the test passed or not. Needs root (apt-get).
#
# Usage: tests/pkg/deb_test.sh [OUT_DIR] (default build-deb).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build-deb}
case "$out" in /*) ;; *) out="$top/$out" ;; esac
pkgs=(agentsync libagentsync0 libagentsync-dev)
say() { echo "deb-test: $*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (apt-get install)"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in "${pkgs[@]}"; do
	installed "$p" && fail "$p is installed on this machine already: the test would change it"
done
for d in /etc/agentsync /var/lib/agentsync; do
	[ -e "$d" ] && fail "$d exists already: the test would change it"
done
had_user=0
getent passwd agentsync >/dev/null && had_user=1
had_group=0
getent group agentsync >/dev/null && had_group=1

tmp=$(mktemp -d /tmp/ags-deb.XXXXXX)
pid=""
cleanup() {
	local rc=$?
	set +e
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
	fi
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${pkgs[@]}" >"$tmp/purge.log" 2>&1
	if [ $had_user = 0 ] && getent passwd agentsync >/dev/null; then
		deluser --quiet --system agentsync >/dev/null 2>&1
		getent passwd agentsync >/dev/null && echo "deb-test: could not remove the user agentsync" >&2 && rc=1
	fi
	if [ $had_group = 0 ] && getent group agentsync >/dev/null; then
		delgroup --quiet --system agentsync >/dev/null 2>&1
		getent group agentsync >/dev/null && echo "deb-test: could not remove the group agentsync" >&2 && rc=1
	fi
	rm -rf /etc/agentsync /var/lib/agentsync "$tmp"
	for p in "${pkgs[@]}"; do
		if installed "$p"; then
			echo "deb-test: could not remove $p" >&2
			rc=1
		fi
	done
	exit $rc
}
trap cleanup EXIT

"$top/scripts/deb.sh" "$out" >/dev/null
for p in "${pkgs[@]}"; do
	ls "$out"/"${p}"_*.deb >/dev/null 2>&1 || fail "no ${p}_*.deb in $out"
done

say "lintian"
lintian --fail-on error,warning --suppress-tags package-supports-alternative-init-but-no-init.d-script \
	"$out"/agentsync_*.changes 2>&1 | grep -v 'running with root privileges' | tee "$tmp/lintian.log" ||
	true
[ "${PIPESTATUS[0]}" = 0 ] || fail "lintian found errors or warnings (above)"

say "apt-get install ./agentsync_*.deb ./libagentsync0_*.deb ./libagentsync-dev_*.deb"
(cd "$out" && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	./agentsync_*.deb ./libagentsync0_*.deb ./libagentsync-dev_*.deb) >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "apt-get install"; }
for p in "${pkgs[@]}"; do installed "$p" || fail "$p is not installed"; done

# What the install did.
getent passwd agentsync >/dev/null || fail "no user agentsync"
[ "$(stat -c '%U:%G %a' /etc/agentsync/agentsync.json)" = "root:agentsync 640" ] ||
	fail "/etc/agentsync/agentsync.json is $(stat -c '%U:%G %a' /etc/agentsync/agentsync.json)"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' agentsync)
grep -q /etc/agentsync/agentsync.json <<<"$conffiles" ||
	fail "/etc/agentsync/agentsync.json is not a conffile"
systemd-analyze verify /lib/systemd/system/agentsyncd.service >"$tmp/verify.log" 2>&1 ||
	{ cat "$tmp/verify.log"; fail "systemd-analyze verify of the installed unit"; }
[ ! -s "$tmp/verify.log" ] || { cat "$tmp/verify.log"; fail "systemd-analyze verify complained"; }
man -w agentsyncd >/dev/null && man -w agentsync >/dev/null && man -w 5 agentsync.json >/dev/null ||
	fail "the man pages are not found by man"
/usr/bin/agentsyncd --config /etc/agentsync/agentsync.json --check >/dev/null 2>&1 ||
	fail "the installed config does not pass --check"

# The installed daemon, as the unit runs it: user agentsync, its state directory.
install -d -o agentsync -g agentsync -m 0700 /var/lib/agentsync
# setpriv executes the daemon itself (no child), so $pid is the daemon's PID.
setpriv --reuid=agentsync --regid=agentsync --init-groups /usr/bin/agentsyncd \
	--config /etc/agentsync/agentsync.json \
	--data /var/lib/agentsync --port 0 --api 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 200); do
	grep -q '^listening ' "$tmp/out" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
grep -q '^listening ' "$tmp/out" || { cat "$tmp/err"; fail "the installed daemon did not start"; }
api=$(sed -n 's/.* api=\([^ ]*\) .*/\1/p' "$tmp/out")
[ "$(curl -fsS "http://$api/healthz")" = ok ] || fail "/healthz of the installed daemon"
echo '{"id":"deb-1","agentId":"a","type":"t","data":{},"metadata":{"source":"deb","tags":[]},"timestamp":1,"version":1}' |
	/usr/bin/agentsync --api "$api" put - >/dev/null || fail "agentsync put"
status=$(/usr/bin/agentsync --api "$api" status) || fail "agentsync status"
grep -q '^patterns    1$' <<<"$status" || fail "agentsync status: $status"
/usr/bin/agentsync --api "$api" backup --out "$tmp/backup.db" >/dev/null || fail "agentsync backup"
[ "$(stat -c %U /var/lib/agentsync/store.db)" = agentsync ] || fail "the store is not the daemon user's"

# The -dev package: a program built with pkg-config against /usr.
[ "$(pkg-config --modversion agentsync)" = "$(/usr/bin/agentsync --version | awk '{print $2}')" ] ||
	fail "pkg-config agentsync"
# shellcheck disable=SC2046
cc -std=c17 -Wall -Werror -o "$tmp/consumer" "$top/tests/pkg/consumer/main.c" \
	$(pkg-config --cflags --libs agentsync) || fail "cc against the installed libagentsync-dev"
mkdir "$tmp/store"
res=$("$tmp/consumer" "$tmp/store") && [[ $res == "ok "* ]] || fail "the consumer against libagentsync0: $res"
libs=$(ldd "$tmp/consumer")
grep -Eq 'libagentsync.so.0 => /(usr/)?lib/' <<<"$libs" ||
	fail "the consumer does not use libagentsync0: $libs"

kill -TERM "$pid"
wait "$pid" || fail "the installed daemon did not stop cleanly"
pid=""

say "apt-get purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${pkgs[@]}" >"$tmp/purge.log" 2>&1 ||
	{ cat "$tmp/purge.log"; fail "apt-get purge"; }
for p in "${pkgs[@]}"; do installed "$p" && fail "$p is still installed"; done
[ ! -e /usr/bin/agentsyncd ] && [ ! -e /etc/agentsync/agentsync.json ] && [ ! -e /var/lib/agentsync ] ||
	fail "the purge left files behind"
echo "deb: 1 passed, 0 failed"
