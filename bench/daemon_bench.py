#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon path, end to end as a user runs it (issue 18).

Two agentsyncd on 127.0.0.1 (A dials B, mutual TLS, both durable stores),
driven through the HTTP API and the real CLI:

  W1  `agentsync put FILE` of an NDJSON file of N patterns (~450 B, the same
      records as bench/sync_bench) into A; the clock runs from the start of
      `put` until B's /v1/state shows N patterns (polled every 20 ms).
  W2  one pattern POSTed to A (keep-alive connection) until B's /v1/events
      SSE stream delivers its pattern:received; p50/p99 over --w2 rounds.

For W1 it records the user+system CPU seconds of both daemons (from
/proc/PID/stat, over the workload only) and their peak RSS (VmHWM of
/proc/PID/status). Prints one `row` line per workload with the same columns
as bench/compare.sh. Python standard library only.

  bench/daemon_bench.py --bin-dir build/bin [-n 100000] [--w2 2000] [--keep]
                        [--perf DIR]
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

CLK = os.sysconf("SC_CLK_TCK")


def record(i, prefix="w1"):
    """The record of bench/sync_bench's make(), as NDJSON."""
    return (
        '{"id":"%s-%08d","agentId":"test-generator","type":"test_execution",'
        '"data":{"testCase":"UserLogin-%d","result":"passed","duration":%d,'
        '"errors":[],"file":"src/auth/login.test.ts","assertions":17,'
        '"coverage":{"lines":87.5,"branches":71.25,"functions":92.1},'
        '"env":{"node":"20.11","os":"linux"}},'
        '"metadata":{"source":"test-generator","tags":["unit","auth","login"],'
        '"priority":%d},"timestamp":%d,"version":1}'
        % (prefix, i, i, 100 + i % 900, 1 + i % 10, 1761100000000 + i)
    )


def write_records(path, n, prefix="w1"):
    with open(path, "w") as f:
        for i in range(n):
            f.write(record(i, prefix))
            f.write("\n")


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / CLK


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def http_json(port, method, path, body=None, ctype=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": ctype} if ctype else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


class Daemon:
    def __init__(self, d, name, quic, api, peers, fsync):
        self.name, self.api = name, api
        cfg = {
            "quic": {
                "nodeId": name,
                "host": "127.0.0.1",
                "port": quic,
                "dataDir": "%s/%s-data" % (d, name),
                "api": {"listen": "127.0.0.1:%d" % api},
                "peers": peers,
                "retry": {"maxAttempts": 100, "baseDelay": 100, "maxDelay": 500},
                "tls": {
                    "cert": "%s/certs/%s.pem" % (d, name),
                    "key": "%s/certs/%s-key.pem" % (d, name),
                    "ca": "%s/certs/ca.pem" % d,
                    "rejectUnauthorized": True,
                },
                "fsync": fsync,
                "log": {"level": "warn"},
            }
        }
        self.config = "%s/%s.json" % (d, name)
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.out = open("%s/%s.out" % (d, name), "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "agentsyncd"), "--config", self.config],
            stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        for _ in range(1200):
            with open("%s/%s.out" % (d, name)) as f:
                if "listening " in f.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        sys.exit("agentsyncd %s did not start (see %s/%s.out)" % (name, d, name))

    def state(self):
        return http_json(self.api, "GET", "/v1/state")[1]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def wait_until(what, cond, tries=3000, step=0.02):
    for _ in range(tries):
        if cond():
            return
        time.sleep(step)
    sys.exit("timed out waiting for " + what)


def w1(a, b, d, n, put_args):
    path = "%s/w1.ndjson" % d
    write_records(path, n)
    size = os.path.getsize(path)
    cpu0 = (cpu_s(a.pid), cpu_s(b.pid))
    t0 = time.perf_counter()
    cli = subprocess.Popen(
        [os.path.join(BIN, "agentsync"), "--api", "127.0.0.1:%d" % a.api, "put"] + put_args + [path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    t_put = None
    held = 0
    status, ru = 0, None
    for _ in range(60000):
        if t_put is None:
            pid, status, ru = os.wait4(cli.pid, os.WNOHANG)
            if pid:
                t_put = time.perf_counter() - t0
        held = b.state()["store"]["patterns"]
        if held >= n:
            break
        time.sleep(0.02)
    t = time.perf_counter() - t0
    out, err = cli.stdout.read(), cli.stderr.read()
    if t_put is None:
        _, status, ru = os.wait4(cli.pid, 0)
        t_put = time.perf_counter() - t0
    cli.returncode = os.waitstatus_to_exitcode(status)
    if cli.returncode != 0 or held < n:
        sys.exit("W1 failed: put rc=%d %s %s, B holds %d" % (cli.returncode, out, err, held))
    cpu_a, cpu_b = cpu_s(a.pid) - cpu0[0], cpu_s(b.pid) - cpu0[1]
    return {"n": n, "bytes": size, "seconds": t, "put_seconds": t_put, "cpu": cpu_a + cpu_b,
            "cpu_a": cpu_a, "cpu_b": cpu_b, "cpu_cli": ru.ru_utime + ru.ru_stime}


def w2(a, b, rounds):
    """Latency of one POST to A until B's SSE delivers pattern:received."""
    sse = socket.create_connection(("127.0.0.1", b.api), timeout=30)
    sse.sendall(b"GET /v1/events?type=pattern:received HTTP/1.1\r\nHost: b\r\n"
                b"Accept: text/event-stream\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sse.recv(65536)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    post = http.client.HTTPConnection("127.0.0.1", a.api, timeout=30)
    lat, post_lat = [], []
    for i in range(rounds + 20):  # the first 20 warm up
        body = record(i, "w2-%d" % os.getpid()).encode()
        needle = b'"patternId":"w2-%d-%08d"' % (os.getpid(), i)
        t0 = time.perf_counter()
        post.request("POST", "/v1/patterns", body=body,
                     headers={"Content-Type": "application/json"})
        r = post.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("W2: POST answered %d" % r.status)
        t_post = time.perf_counter() - t0
        while needle not in buf:
            chunk = sse.recv(262144)
            if not chunk:
                sys.exit("W2: event stream ended")
            buf += chunk
        dt = time.perf_counter() - t0
        buf = buf[buf.index(needle) + len(needle):]
        if i >= 20:
            lat.append(dt)
            post_lat.append(t_post)
    post.close()
    sse.close()
    lat.sort()
    post_lat.sort()
    return {
        "post_p50": post_lat[len(post_lat) // 2] * 1e6,
        "p50": lat[len(lat) // 2] * 1e6,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6,
        "rounds": rounds,
    }


def main():
    global BIN
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--w2", type=int, default=2000, help="W2 rounds (0: skip W2)")
    ap.add_argument("--fsync", action="store_true", help="fsync every commit on both")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--put-arg", action="append", default=[],
                    help="an argument for agentsync put (e.g. --put-arg=--chunk-bytes=1048576)")
    ap.add_argument("--perf", metavar="DIR",
                    help="perf record -g each daemon during W1 into DIR/{a,b}.perf")
    args = ap.parse_args()
    BIN = os.path.abspath(args.bin_dir)
    d = tempfile.mkdtemp(prefix="ags-daemonbench-")
    subprocess.run([os.path.join(BIN, "agentsync"), "certs", "init", "--dir", d + "/certs",
                    "--nodes", "a,b"], check=True, stdout=subprocess.DEVNULL)
    qa, qb = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    pa, pb = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    b = Daemon(d, "b", qb, pb, [], args.fsync)
    a = Daemon(d, "a", qa, pa, [{"id": "b", "address": "127.0.0.1", "port": qb}], args.fsync)
    try:
        wait_until("A and B to connect",
                   lambda: a.state()["connections"] >= 1 and b.state()["connections"] >= 1)
        load = os.getloadavg()
        perf = []
        if args.perf:
            os.makedirs(args.perf, exist_ok=True)
            for x in (a, b):
                perf.append(subprocess.Popen(
                    ["perf", "record", "-q", "-F", "999", "--call-graph", "dwarf,16384", "-p", str(x.pid), "-o",
                     "%s/%s.perf" % (args.perf, x.name)], stdout=subprocess.DEVNULL))
            time.sleep(1)
        r = w1(a, b, d, args.n, args.put_arg)
        for p in perf:
            p.send_signal(2)
            p.wait()
        rss = peak_rss_mb(a.pid) + peak_rss_mb(b.pid)
        print("# load average %.2f %.2f %.2f; %d records, %d bytes of NDJSON"
              % (load + (r["n"], r["bytes"])))
        print("%-10s %-34s %10s %9s %12s %14s %11s" % ("row", "system", "N", "seconds",
                                                      "patterns/s", "server_cpu_s",
                                                      "peak_rss_mb"))
        print("%-10s %-34s %10d %9.3f %12.0f %14.2f %11.1f"
              % ("row", "agentsync put -> agentsyncd A -> B", r["n"], r["seconds"],
                 r["n"] / r["seconds"], r["cpu"], rss))
        print("# A accepted everything after %.3f s (%.0f/s); server CPU per pattern %.1f us"
              " (A %.2f s, B %.2f s; the CLI %.2f s)"
              % (r["put_seconds"], r["n"] / r["put_seconds"], r["cpu"] / r["n"] * 1e6,
                 r["cpu_a"], r["cpu_b"], r["cpu_cli"]))
        if args.w2:
            l = w2(a, b, args.w2)
            print("w2 agentsync POST A -> SSE pattern:received on B: p50 %.0f us p99 %.0f us"
                  " (%d rounds, after W1; the POST's answer alone: p50 %.0f us)"
                  % (l["p50"], l["p99"], l["rounds"], l["post_p50"]))
    finally:
        a.stop()
        b.stop()
        if args.keep:
            print("# kept " + d)
        else:
            shutil.rmtree(d, ignore_errors=True)


BIN = None
if __name__ == "__main__":
    main()
