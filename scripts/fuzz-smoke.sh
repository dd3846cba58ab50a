#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs each libFuzzer target in BUILD_DIR/fuzz for SECONDS, starting from a
# scratch copy of its seed corpus in fuzz/corpus/<name>/ (the repo's corpus is
# never written to). Fails when a target finds a crash, leak or timeout.
set -euo pipefail
build=${1:-build-fuzz}
secs=${2:-20}
top=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
n=0
for bin in "$build"/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	name=${name#fuzz_}
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	if [ -d "$top/fuzz/corpus/$name" ]; then cp -r "$top/fuzz/corpus/$name/." "$work/"; fi
	echo "fuzz-smoke: $name for ${secs}s"
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-artifact_prefix="$work/" "$work" 2>&1 | tail -n 3
	rm -rf "$work"
	trap - EXIT
	n=$((n + 1))
done
echo "fuzz-smoke: $n targets ran clean"
