#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""W1 of bench/daemon_bench.py on Redis replication and NATS JetStream.

The same N records (bench/daemon_bench.py's record()), on 127.0.0.1:

  redis  redis-server primary -> replica, both appendonly yes, appendfsync
         everysec, no RDB snapshots; `redis-cli --pipe` sends SET id record
         for each record to the primary; the clock runs until the replica's
         DBSIZE is N (polled every 20 ms).
  nats   nats-server -js (file store), one stream; bench/compare/nats_w1 (C
         client) publishes every record asynchronously and waits for every
         JetStream ack (= stored).

CPU (user+system over the workload) and peak RSS (VmHWM) of the servers are
read from /proc, as bench/daemon_bench.py does for the daemons. Run by
bench/compare.sh, which installs the servers.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import daemon_bench as db  # noqa: E402


def row(system, n, seconds, cpu, rss):
    print("%-10s %-34s %10d %9.3f %12.0f %14.2f %11.1f"
          % ("row", system, n, seconds, n / seconds, cpu, rss), flush=True)


def wait_port(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("nothing listens on %d" % port)


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), check=True,
                          capture_output=True, text=True).stdout


def resp(path_in, path_out):
    with open(path_in, "rb") as f, open(path_out, "wb") as o:
        for line in f:
            rec = line.rstrip(b"\n")
            key = rec[7:rec.index(b'"', 7)]  # {"id":"KEY",...
            o.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                    % (len(key), key, len(rec), rec))


def redis(d, n, data):
    pp, rp = db.free_port(socket.SOCK_STREAM), db.free_port(socket.SOCK_STREAM)
    procs = []
    for name, port, extra in (("primary", pp, []),
                              ("replica", rp, ["--replicaof", "127.0.0.1", str(pp)])):
        os.makedirs("%s/%s" % (d, name))
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir",
             "%s/%s" % (d, name), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--daemonize", "no", "--logfile", "%s/%s.log" % (d, name)] + extra,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        wait_port(port)
    try:
        db.wait_until("the replica's link", lambda: "master_link_status:up" in
                      redis_cli(rp, "info", "replication"))
        pipe = "%s/w1.resp" % d
        resp(data, pipe)
        cpu0 = sum(db.cpu_s(p.pid) for p in procs)
        t0 = time.perf_counter()
        with open(pipe, "rb") as f:
            cli = subprocess.Popen(["redis-cli", "-p", str(pp), "--pipe"], stdin=f,
                                   stdout=subprocess.DEVNULL)
            db.wait_until("the replica to hold N",
                          lambda: int(redis_cli(rp, "dbsize")) >= n, tries=60000)
            t = time.perf_counter() - t0
            cli.wait()
        cpu = sum(db.cpu_s(p.pid) for p in procs) - cpu0
        rss = sum(db.peak_rss_mb(p.pid) for p in procs)
        row("redis primary -> replica (AOF)", n, t, cpu, rss)
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def nats(d, n, data, client):
    port = db.free_port(socket.SOCK_STREAM)
    p = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                          "%s/nats" % d], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    try:
        cpu0 = db.cpu_s(p.pid)
        t0 = time.perf_counter()
        subprocess.run([client, "nats://127.0.0.1:%d" % port, data], check=True,
                       stdout=subprocess.DEVNULL)
        t = time.perf_counter() - t0
        row("nats jetstream (file), C client", n, t, db.cpu_s(p.pid) - cpu0,
            db.peak_rss_mb(p.pid))
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--nats-client", required=True)
    ap.add_argument("--only", choices=["redis", "nats"])
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="ags-compare-")
    try:
        data = "%s/w1.ndjson" % d
        db.write_records(data, args.n)
        if args.only != "nats":
            redis("%s/redis" % d, args.n, data)
        if args.only != "redis":
            nats(d, args.n, data, args.nats_client)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
