# SPDX-License-Identifier: Apache-2.0
"""GET /metrics of two real daemons that synced: `promtool check metrics`
(Debian's prometheus package) accepts it, and the series an operator expects
are there and true: agentsync_build_info, process_* (CPU, memory, fds, start
time), patterns received per peer, wire bytes per codec that add up to the
node's bytesTransferred."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agsproc as A  # noqa: E402


def series(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$', line)
        A.check(m, "unparsable metrics line: " + line)
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(s, name, **labels):
    k = (name, frozenset(labels.items()))
    A.check(k in s, "no series %s%s" % (name, labels))
    return s[k]


def main():
    wd = A.workdir("metrics")
    try:
        certs = os.path.join(wd, "certs")
        A.make_certs(certs, ["a", "b"])
        a = A.Daemon(wd, "a", certs).start()
        b = A.Daemon(wd, "b", certs).start()
        a.add_peer(b)
        st, _, body = a.request("POST", "/v1/patterns", [A.pattern(i, "a") for i in range(300)])
        A.check(st in (200, 201), "put on a: %d %s" % (st, body[:200]))
        st, _, body = b.request("POST", "/v1/patterns", [A.pattern(i, "b") for i in range(50)])
        A.check(st in (200, 201), "put on b: %d %s" % (st, body[:200]))
        A.wait_for("both stores to hold 350 patterns",
                   lambda: a.state()["store"]["patterns"] == 350
                   and b.state()["store"]["patterns"] == 350)
        A.wait_for("no lag", lambda: a.state()["peers"].get("b", {}).get("lag", 1) == 0
                   and b.state()["peers"].get("a", {}).get("lag", 1) == 0)
        for d in (a, b):
            st, hdr, text = d.request("GET", "/metrics")
            A.check(st == 200, "GET /metrics: %d" % st)
            r = subprocess.run(["promtool", "check", "metrics"], input=text,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            A.check(r.returncode == 0, "promtool check metrics on %s's /metrics:\n%s" %
                    (d.name, r.stdout.decode()))
        # Counters are read once both sides are idle, so the two answers agree.
        time.sleep(0.5)
        text = a.request("GET", "/metrics")[2].decode()
        state = a.state()
        s = series(text)
        ver = A.run([os.path.join(A.BIN, "agentsyncd"), "--version"]).stdout.split()[1]
        infos = [k for k in s if k[0] == "agentsync_build_info"]
        A.check(len(infos) == 1 and s[infos[0]] == 1, "one agentsync_build_info series of 1")
        A.check(("version", ver) in infos[0][1], "build_info version is not %s: %s" %
                (ver, sorted(infos[0][1])))
        A.check(value(s, "agentsync_peer_patterns_received_total", peer="b") == 50,
                "a received 50 entries from b, metrics say %s" %
                value(s, "agentsync_peer_patterns_received_total", peer="b"))
        A.check(state["peers"]["b"]["patternsReceived"] == 50, "/v1/state patternsReceived")
        sb = series(b.request("GET", "/metrics")[2].decode())
        A.check(value(sb, "agentsync_peer_patterns_received_total", peer="a") == 300,
                "b received 300 entries from a")
        total = 0
        for codec in ("none", "gzip", "zstd", "unknown"):
            for direction in ("in", "out"):
                total += value(s, "agentsync_bytes_total", direction=direction, codec=codec)
        A.check(total == state["stats"]["bytesTransferred"],
                "agentsync_bytes_total adds up to %d, bytesTransferred is %d" %
                (total, state["stats"]["bytesTransferred"]))
        compressed = (value(s, "agentsync_bytes_total", direction="out", codec="zstd") +
                      value(s, "agentsync_bytes_total", direction="out", codec="gzip"))
        A.check(compressed > 0, "300 patterns went out without a compressed batch")
        A.check(value(s, "agentsync_bytes_total", direction="in", codec="unknown") == 0,
                "unknown-codec bytes from a well-behaved peer")
        A.check(value(s, "process_cpu_seconds_total") > 0, "process_cpu_seconds_total")
        A.check(value(s, "process_resident_memory_bytes") > 1 << 20, "process_resident_memory_bytes")
        A.check(value(s, "process_virtual_memory_bytes") >= value(s, "process_resident_memory_bytes"),
                "virtual memory below resident")
        fds = len(os.listdir("/proc/%d/fd" % a.proc.pid))
        A.check(abs(value(s, "process_open_fds") - fds) <= 4,
                "process_open_fds %s, /proc says %d" % (value(s, "process_open_fds"), fds))
        A.check(value(s, "process_max_fds") >= value(s, "process_open_fds"), "process_max_fds")
        start = value(s, "process_start_time_seconds")
        proc_start = os.stat("/proc/%d" % a.proc.pid).st_ctime
        A.check(abs(start - proc_start) < 5,
                "process_start_time_seconds %s, /proc/PID says %s" % (start, proc_start))
        print("metrics: 1 passed, 0 failed")
    finally:
        A.cleanup(wd)


if __name__ == "__main__":
    main()
