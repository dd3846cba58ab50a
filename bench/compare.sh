#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# W1 of the daemon path next to Redis replication and NATS JetStream, same
# records, same columns, run back to back in pairs (issue 18):
#
#   bench/compare.sh [BUILD_DIR] [N] [PAIRS]     (defaults: build 100000 2)
#
# Installs Debian's redis-server, redis-tools, nats-server and libnats-dev
# when they are missing (apt-get; needs root). Only this script does: never
# make test nor scripts/install-deps.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
n=${2:-100000}
pairs=${3:-2}

need=
command -v redis-server >/dev/null || need="$need redis-server"
command -v redis-cli >/dev/null || need="$need redis-tools"
command -v nats-server >/dev/null || need="$need nats-server"
[ -f /usr/include/nats/nats.h ] || need="$need libnats-dev"
if [ -n "$need" ]; then
	echo "# installing$need"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

client=$(mktemp -d)/nats_w1
trap 'rm -rf "$(dirname "$client")"' EXIT
cc -O2 -o "$client" "$here/compare/nats_w1.c" -lnats

echo "# $(nproc) cores; redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/');" \
	"nats-server $(nats-server --version | sed 's/.*v//')"
i=0
while [ "$i" -lt "$pairs" ]; do
	i=$((i + 1))
	echo "# pair $i, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	/usr/bin/python3 "$here/daemon_bench.py" --bin-dir "$build/bin" -n "$n" --w2 0 | grep '^row'
	/usr/bin/python3 "$here/compare/compare.py" -n "$n" --nats-client "$client"
done
