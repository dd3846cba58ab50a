#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian package agentsync needs to build, test, fuzz and run.
#
# Idempotent: when everything is present it checks and exits without touching
# apt. It says what it changes. Works on Debian 12 (bookworm) and 13 (trixie).
#
#  - ngtcp2 >= 1.11 and its GnuTLS crypto helper: on bookworm from
#    bookworm-backports (a deb822 source is added for that suite).
#  - SQLCipher 4.6 (the store's SQLite, with encryption at rest): on bookworm
#    from bookworm-backports (bookworm itself has 3.4). The sqlite3 program
#    stays: the tests use it to show an encrypted store is unreadable.
#  - yyjson: on bookworm from trixie, behind an apt pin that lets nothing but
#    libyyjson* come from trixie.
#  - iproute2 (ip, tc), nftables and python3 for the fault-injection test
#    (tests/chaos); setpriv comes with util-linux, which every Debian has.
#  - Python (bindings/python): Debian's python3 with its headers, venv,
#    setuptools, the wheel package as a wheel file, pytest and mypy.
#  - nghttp3 1.8 (HTTP/3 framing and QPACK for WebTransport): on bookworm from
#    bookworm-backports; Debian's chromium (headless) for the browser tests.
#  - PostgreSQL 15 server and libpq for the hub's PostgreSQL store backend
#    (the tests start a private cluster with initdb/pg_ctl).
#  - Avahi (libavahi-client, avahi-daemon, dbus) for optional LAN discovery.
set -euo pipefail

say() { printf 'install-deps: %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		say "not root and no sudo: cannot install packages" >&2
		exit 1
	fi
fi

# Packages from the release's own suite.
BASE_PKGS=(
	build-essential cmake pkg-config git ca-certificates
	libgnutls28-dev gnutls-bin
	sqlite3
	zlib1g-dev libzstd-dev
	libuv1-dev
	libmicrohttpd-dev
	libjwt-gnutls-dev
	libcmocka-dev
	clang llvm
	clang-tidy cppcheck
	curl libcurl4-gnutls-dev
	python3-dev python3-venv python3-pytest python3-setuptools python3-wheel-whl python3-mypy
	iproute2 nftables
	# Packaging and operations (issue 16): sd_notify, man pages, the Debian
	# package and its checks, and the tests of tests/pkg/ (Debian's python3
	# with jsonschema and yaml, promtool, systemd-analyze, man, col, zsh).
	libsystemd-dev scdoc
	debhelper dpkg-dev lintian adduser
	python3 python3-jsonschema python3-yaml
	prometheus systemd man-db bsdextrautils bash zsh binutils
	# Browsers (issue 21), the PostgreSQL hub store (issue 22), LAN discovery
	# through DNS-SD (issue 20).
	chromium fonts-dejavu-core
	postgresql libpq-dev
	libavahi-client-dev avahi-daemon avahi-utils dbus
)
# Packages that on bookworm come from bookworm-backports (trixie: its own suite).
BACKPORTS_PKGS=(libngtcp2-dev libngtcp2-crypto-gnutls-dev libsqlcipher-dev libnghttp3-dev)
# Packages that on bookworm come from trixie.
YYJSON_PKGS=(libyyjson-dev)
# Node.js for bindings/node (the npm package and its tests): node, npm and
# node_api.h. Installed only when one of them is missing: a Node already on
# the machine (another packaging of it, e.g. one that ships npm and the
# headers itself) is kept.
NODE_PKGS=(nodejs libnode-dev npm)

codename=""
if [ -r /etc/os-release ]; then
	# shellcheck disable=SC1091
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
case "$codename" in
bookworm | trixie) ;;
*)
	say "unsupported system '${codename:-unknown}': Debian 12 (bookworm) or 13 (trixie) expected" >&2
	exit 1
	;;
esac

# node, npm and the headers of that node (<prefix>/include/node/node_api.h)?
have_node() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
	local prefix
	prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
	[ -f "$prefix/include/node/node_api.h" ]
}

# Every package is installed, ngtcp2 and SQLCipher are new enough?
have_all() {
	local p
	for p in "${BASE_PKGS[@]}" "${BACKPORTS_PKGS[@]}" "${YYJSON_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
	pkg-config --atleast-version=1.11 libngtcp2 2>/dev/null || return 1
	# SQLCipher's .pc gives the SQLite version it is built on: 3.46 is SQLCipher 4.6.
	pkg-config --atleast-version=3.46 sqlcipher 2>/dev/null || return 1
	pkg-config --atleast-version=1.8 libnghttp3 2>/dev/null || return 1
	pkg-config --exists libngtcp2_crypto_gnutls gnutls yyjson 2>/dev/null || return 1
	have_node || return 1
	return 0
}

if have_all; then
	say "all packages present"
	exit 0
fi

changed_sources=0
if [ "$codename" = bookworm ]; then
	bp=/etc/apt/sources.list.d/agentsync-bookworm-backports.sources
	if [ ! -f "$bp" ]; then
		say "adding apt source $bp (suite bookworm-backports)"
		$SUDO tee "$bp" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		changed_sources=1
	fi
	tx=/etc/apt/sources.list.d/agentsync-trixie.sources
	if [ ! -f "$tx" ]; then
		say "adding apt source $tx (suite trixie, pinned: only libyyjson* may come from it)"
		$SUDO tee "$tx" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		changed_sources=1
	fi
	pin=/etc/apt/preferences.d/agentsync-trixie
	if [ ! -f "$pin" ]; then
		say "adding apt pin $pin"
		$SUDO tee "$pin" >/dev/null <<'PIN'
# agentsync: take libyyjson* from trixie, nothing else.
Package: libyyjson*
Pin: release n=trixie
Pin-Priority: 500

Package: *
Pin: release n=trixie
Pin-Priority: -1
PIN
		changed_sources=1
	fi
fi

stamp=/var/lib/apt/periodic/update-success-stamp
lists_empty=1
if compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null 2>&1; then lists_empty=0; fi
if [ "$changed_sources" = 1 ] || [ "$lists_empty" = 1 ] || [ ! -e "$stamp" ] ||
	! apt-cache show libngtcp2-dev >/dev/null 2>&1 || ! apt-cache show libyyjson-dev >/dev/null 2>&1; then
	say "apt-get update"
	$SUDO apt-get update -q
fi

export DEBIAN_FRONTEND=noninteractive
APT=($SUDO apt-get install -y -q --no-install-recommends)

say "installing: ${BASE_PKGS[*]}"
"${APT[@]}" "${BASE_PKGS[@]}"
if [ "$codename" = bookworm ]; then
	say "installing from bookworm-backports: ${BACKPORTS_PKGS[*]}"
	"${APT[@]}" -t bookworm-backports "${BACKPORTS_PKGS[@]}"
	say "installing from trixie (pinned): ${YYJSON_PKGS[*]}"
	"${APT[@]}" "${YYJSON_PKGS[@]}"
else
	"${APT[@]}" "${BACKPORTS_PKGS[@]}" "${YYJSON_PKGS[@]}"
fi

if ! have_node; then
	say "installing Node.js for bindings/node: ${NODE_PKGS[*]}"
	"${APT[@]}" "${NODE_PKGS[@]}"
fi

if ! have_all; then
	say "packages installed but a check still fails (ngtcp2 >= 1.11? SQLCipher >= 4.6? nghttp3 >= 1.8? yyjson?)" >&2
	pkg-config --modversion libngtcp2 libngtcp2_crypto_gnutls gnutls yyjson sqlcipher libnghttp3 >&2 || true
	exit 1
fi
say "done: ngtcp2 $(pkg-config --modversion libngtcp2), yyjson $(pkg-config --modversion yyjson), SQLCipher on SQLite $(pkg-config --modversion sqlcipher)"
