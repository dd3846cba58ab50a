#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench.py: agentsync from Python against C, W1 of bench/sync_bench.

W1: node A is given N patterns (~450 B each, the same records as
sync_bench's) with one ``Node.sync_patterns`` call; the time is from that
call until node B, in a second process, holds all N durably (its store's
count). B is a Python process too (``bench.py --b``), which, like
sync_bench's B, reads its store's count at least every 10 ms and reports the
monotonic time it saw them all through a pipe. The patterns are dicts made
before the clock starts (as sync_bench parses its patterns before its
clock); converting and checking them is the binding's work, so it is timed.

Each round runs the C ``sync_bench`` (SB_ONLY=w1) and this Python W1 back to
back; the report gives each pair and the ratio of the medians.

Usage: bench.py [--n 100000] [--rounds 3] [--sync-bench build/bench/sync_bench]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The agentsync next to this file is the source, without its extension: import
# the built or installed one (PYTHONPATH=build/python, or a venv).
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]


def pattern(i: int) -> dict:
    """The record sync_bench's make() writes, as a dict."""
    return {
        "id": "w1-%08d" % i,
        "agentId": "test-generator",
        "type": "test_execution",
        "data": {
            "testCase": "UserLogin-%d" % i,
            "result": "passed",
            "duration": 100 + i % 900,
            "errors": [],
            "file": "src/auth/login.test.ts",
            "assertions": 17,
            "coverage": {"lines": 87.5, "branches": 71.25, "functions": 92.1},
            "env": {"node": "20.11", "os": "linux"},
        },
        "metadata": {"source": "test-generator", "tags": ["unit", "auth", "login"], "priority": 1 + i % 10},
        "timestamp": 1761100000000 + i,
        "version": 1,
    }


def node_config(d: str, node_id: str) -> dict:
    # As sync_bench's node_cfg: port 0, retry 50-500 ms, defaults otherwise.
    return {
        "nodeId": node_id,
        "host": "127.0.0.1",
        "port": 0,
        "dataDir": os.path.join(d, node_id),
        "tls": {
            "cert": os.path.join(d, "certs", node_id + ".pem"),
            "key": os.path.join(d, "certs", node_id + "-key.pem"),
            "ca": os.path.join(d, "certs", "ca.pem"),
        },
        "retry": {"baseDelay": 50, "maxDelay": 500},
    }


def mono_us() -> int:
    return time.monotonic_ns() // 1000  # CLOCK_MONOTONIC, as sync_bench's mono_us


def run_b(d: str, a_port: int, want: int) -> None:
    """Node B: peer of A; prints "held N T" once its store holds `want`."""
    import agentsync

    cfg = node_config(d, "b")
    cfg["peers"] = [{"id": "a", "address": "127.0.0.1", "port": a_port}]
    with agentsync.Node(cfg) as b:
        print("started", flush=True)
        while True:
            time.sleep(0.01)
            st = b.get_state()
            have = st["store"]["patterns"]
            if have >= want:
                print(f"held {have} {mono_us()}", flush=True)
                break
        sys.stdin.read()  # until A is done with us


def python_w1(n: int) -> tuple[float, float]:
    """One Python W1: (seconds until B holds all, seconds sync_patterns took)."""
    import threading

    import agentsync

    d = tempfile.mkdtemp(prefix="ags-pybench-")
    try:
        agentsync.init_certs(os.path.join(d, "certs"), ["a", "b"])
        a = agentsync.Node(node_config(d, "a"))
        connected = threading.Event()
        a.on("peer:connected", lambda ev: connected.set())
        a.start()
        b = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--b", d, str(a.port), str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            if not connected.wait(30):
                raise SystemExit("bench: B did not connect within 30 s")
            patterns = [pattern(i) for i in range(n)]
            t0 = mono_us()
            a.sync_patterns(patterns)
            t_given = mono_us()
            for line in b.stdout:
                m = re.match(r"held (\d+) (\d+)", line)
                if m:
                    t1 = int(m.group(2))
                    break
            else:
                raise SystemExit("bench: B died")
        finally:
            b.stdin.close()
            b.wait(30)
            a.stop()
        return (t1 - t0) / 1e6, (t_given - t0) / 1e6
    finally:
        shutil.rmtree(d, ignore_errors=True)


def c_w1(sync_bench: str, n: int) -> tuple[float, float]:
    out = subprocess.run([sync_bench, str(n)], env=dict(os.environ, SB_ONLY="w1"),
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"W1 patterns=\d+ seconds=([\d.]+) .*api apply took ([\d.]+) s", out)
    if not m:
        raise SystemExit(f"bench: unexpected sync_bench output: {out!r}")
    return float(m.group(1)), float(m.group(2))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--b":
        run_b(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sync-bench", default=os.path.join(HERE, "..", "..", "build", "bench", "sync_bench"))
    args = ap.parse_args()
    if not os.access(args.sync_bench, os.X_OK):
        raise SystemExit(f"bench: no {args.sync_bench}: build it (make build) or give --sync-bench")
    cs, ps = [], []
    for r in range(args.rounds):
        c, c_give = c_w1(args.sync_bench, args.n)
        p, p_give = python_w1(args.n)
        cs.append(c)
        ps.append(p)
        print(f"round {r + 1}: C W1 {c:.3f} s ({args.n / c:.0f} patterns/s, apply {c_give:.3f} s)"
              f"   Python W1 {p:.3f} s ({args.n / p:.0f} patterns/s, sync_patterns {p_give:.3f} s)"
              f"   Python/C {c / p:.2f}x", flush=True)
    mc, mp = statistics.median(cs), statistics.median(ps)
    print(f"median: C {args.n / mc:.0f} patterns/s, Python {args.n / mp:.0f} patterns/s: "
          f"Python is {mc / mp:.2f}x of C (target >= 0.7x)")


if __name__ == "__main__":
    main()
