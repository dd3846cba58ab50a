#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# agentsync demo (`make demo`): three daemons on 127.0.0.1 in a full mesh.
#   1. makes a CA and certificates for nodes a, b and c (agentsync certs init)
#   2. starts three agentsyncd with their own QUIC and API ports
#   3. watches b and c (agentsync watch), writes patterns to a (agentsync put)
#   4. shows the patterns arriving at b and c, and the status of every node
#      (the same store digest everywhere)
# Everything it starts is stopped, and its temporary directory removed, on exit.
# Usage: scripts/demo.sh BUILD_DIR
set -euo pipefail

BUILD=${1:?usage: scripts/demo.sh BUILD_DIR}
BIN=$(cd "$BUILD/bin" && pwd)
AGENTSYNCD=$BIN/agentsyncd
AGENTSYNC=$BIN/agentsync
for p in "$AGENTSYNCD" "$AGENTSYNC"; do
	[ -x "$p" ] || { echo "demo: $p not found: build first (make build)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/agentsync-demo.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Waits (bounded) until command "$@" succeeds.
wait_for() {
	local i
	for i in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "demo: gave up waiting for: $*" >&2
	return 1
}

# Free-looking ports: a random base, checked against what is listening now.
in_use() { ss -Hlnu 2>/dev/null | grep -q ":$1 " || ss -Hlnt 2>/dev/null | grep -q ":$1 "; }
pick_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		in_use "$p" || { echo "$p"; return; }
	done
}

NODES=(a b c)
declare -A QUIC API
for n in "${NODES[@]}"; do
	QUIC[$n]=$(pick_port)
	API[$n]=$(pick_port)
done

say "certificates: agentsync certs init --dir \$TMP/certs --nodes a,b,c"
"$AGENTSYNC" certs init --dir "$TMP/certs" --nodes a,b,c

for n in "${NODES[@]}"; do
	peers=""
	for m in "${NODES[@]}"; do
		[ "$m" = "$n" ] && continue
		peers+="${peers:+,}{\"id\":\"$m\",\"address\":\"127.0.0.1\",\"port\":${QUIC[$m]}}"
	done
	cat >"$TMP/$n.json" <<EOF
{
  "quic": {
    "nodeId": "$n",
    "host": "127.0.0.1",
    "port": ${QUIC[$n]},
    "dataDir": "$TMP/$n-data",
    "peers": [$peers],
    "syncInterval": 200,
    "retry": {"maxAttempts": 50, "baseDelay": 200, "maxDelay": 1000, "backoffMultiplier": 2},
    "tls": {"cert": "$TMP/certs/$n.pem", "key": "$TMP/certs/$n-key.pem",
            "ca": "$TMP/certs/ca.pem", "rejectUnauthorized": true},
    "api": {"listen": "127.0.0.1:${API[$n]}"}
  }
}
EOF
done

say "starting three daemons"
for n in "${NODES[@]}"; do
	"$AGENTSYNCD" --config "$TMP/$n.json" >"$TMP/$n.out" 2>"$TMP/$n.log" &
	PIDS+=($!)
done
for n in "${NODES[@]}"; do
	wait_for grep -q '^listening ' "$TMP/$n.out"
	cat "$TMP/$n.out"
done

connected() { "$AGENTSYNC" --api "127.0.0.1:${API[$1]}" status --json | grep -q '"connections":2'; }
for n in "${NODES[@]}"; do
	wait_for connected "$n"
done
echo "full mesh up: every node has 2 connections"

say "watching b and c: agentsync watch --type pattern:received"
for n in b c; do
	"$AGENTSYNC" --api "127.0.0.1:${API[$n]}" watch --type pattern:received \
		>"$TMP/watch-$n.ndjson" 2>"$TMP/watch-$n.err" &
	PIDS+=($!)
done
sleep 1

say "writing 5 patterns to a: agentsync put"
for i in 1 2 3 4 5; do
	printf '{"id":"demo_%d","agentId":"test-generator","type":"test_execution","data":{"testCase":"Case%d","result":"passed"},"metadata":{"source":"test-generator","tags":["unit","demo"],"priority":%d},"timestamp":%d,"version":1}\n' \
		"$i" "$i" "$i" "$(date +%s%3N)"
done >"$TMP/patterns.ndjson"
"$AGENTSYNC" --api "127.0.0.1:${API[a]}" put "$TMP/patterns.ndjson"

arrived() { [ "$(grep -c '"type":"pattern:received"' "$TMP/watch-$1.ndjson")" -ge 5 ]; }
for n in b c; do
	wait_for arrived "$n"
	say "events seen by $n (agentsync watch: one JSON line each; id, type, pattern id, source)"
	sed -E 's/^\{"id":([0-9]+),"type":"([^"]*)".*"id":"(demo_[0-9]+)".*"sourceId":"([^"]*)".*/  event \1  \2  \3  from \4/' \
		"$TMP/watch-$n.ndjson"
	echo "  (the first line as printed, cut to 200 columns:)"
	head -n 1 "$TMP/watch-$n.ndjson" | cut -c1-200
done

say "status of each node"
digest_of() { "$AGENTSYNC" --api "127.0.0.1:${API[$1]}" status --json | grep -o '"digest":"[0-9a-f]*"'; }
same() { [ "$(digest_of "$1")" = "$(digest_of a)" ]; }
for n in b c; do
	wait_for same "$n"
done
digests=()
for n in "${NODES[@]}"; do
	echo "--- $n"
	"$AGENTSYNC" --api "127.0.0.1:${API[$n]}" status
	digests+=("$("$AGENTSYNC" --api "127.0.0.1:${API[$n]}" status | awk '/^digest/ {print $2}')")
done
if [ "${digests[0]}" = "${digests[1]}" ] && [ "${digests[1]}" = "${digests[2]}" ]; then
	say "all three nodes hold the same patterns (digest ${digests[0]:0:16}...)"
else
	echo "demo: the digests differ" >&2
	exit 1
fi
