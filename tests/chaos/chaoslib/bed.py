# SPDX-License-Identifier: Apache-2.0
"""A small test bed for the reproduction scripts in tests/chaos/repro/.

    with Bed(args, n=2, dials={1: [0]}) as bed:
        bed.put(bed.nodes[1], [patterns.record(...)])
        ...

It makes the namespaces and daemons as the chaos run does (netns.py,
cluster.py), enters the control namespace, and stops and removes all of it
on the way out, whatever happened. Where namespaces cannot be made it exits
77 with the reason (ctest's SKIP_RETURN_CODE, should a script become a test).
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time

from . import api as apimod
from . import cluster, netns, patterns

SKIP = 77


def arg_parser(doc):
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.environ.get("AGS_BIN_DIR", "build/bin"),
                    help="where agentsyncd and agentsync are (default $AGS_BIN_DIR or build/bin)")
    ap.add_argument("--keep", action="store_true", help="keep the directory with the logs")
    ap.add_argument("--log-level", default="info", help="the daemons' log.level (default info)")
    return ap


def log_time(line):
    """The wall-clock time (s since the epoch) of a text log line, or None."""
    try:
        stamp = line.split(" ", 1)[0]
        dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


class Bed:
    def __init__(self, args, n, dials, idle_timeout_ms=3000, extra=None):
        self.args, self.n, self.dials = args, n, dials
        self.idle_timeout_ms, self.extra = idle_timeout_ms, extra
        self.net = self.cl = None
        self.workdir = None
        self.seq = 0

    def __enter__(self):
        reason = netns.unavailable_reason()
        if reason:
            print("SKIP: cannot make network namespaces here: " + reason, flush=True)
            sys.exit(SKIP)
        netns.remove_stale()
        self.workdir = tempfile.mkdtemp(prefix="agentsync-repro-")
        try:
            self.net = netns.Net(self.n)
            self.net.create()
            self.cl = cluster.Cluster(self.net, self.workdir, os.path.abspath(self.args.bin_dir),
                                      self.idle_timeout_ms)
            extra = dict(self.extra or {})
            extra.setdefault("log", {"level": self.args.log_level})
            self.cl.configure(self.dials, extra)
            self.net.enter_ctl()
            self.cl.start_all()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, et, ev, tb):
        if self.cl:
            self.cl.stop()
        if self.net:
            self.net.destroy()
        if self.args.keep or et is not None:
            print("directory kept: %s" % self.workdir, flush=True)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return False

    @property
    def nodes(self):
        return self.cl.nodes

    # Writes and reads through the HTTP API.
    def records(self, prefix, count):
        out = []
        for _ in range(count):
            self.seq += 1
            out.append(patterns.record("%s%06d" % (prefix, self.seq), 1,
                                       int(time.time() * 1000), 0, self.seq, "repro"))
        return out

    def put(self, node, writes, chunk=200):
        """Posts writes to node; returns those it acknowledged."""
        acked = []
        api = node.api(10)
        for k in range(0, len(writes), chunk):
            part = writes[k:k + chunk]
            status, doc = api.json("POST", "/v1/patterns",
                                   ("\n".join(w.body for w in part) + "\n").encode())
            if status != 200:
                raise RuntimeError("%s: POST /v1/patterns: HTTP %d %s" % (node.name, status, doc))
            refused = {r["index"] for r in doc["rejected"]}
            acked += [w for i, w in enumerate(part) if i not in refused]
        api.close()
        return acked

    def has(self, node, id):
        try:
            status, _ = node.api(2).request("GET", "/v1/patterns/" + id)
        except (apimod.NotSent, apimod.Unknown):
            return False
        return status == 200

    def ids(self, node):
        return {p["id"] for p in node.api(30).listing()}

    def state(self, node):
        return node.api(5).state()

    def peer(self, node, other):
        """node's view of its peer `other` in /v1/state (None when it has none)."""
        return self.state(node)["peers"].get(other.name)

    def wait(self, cond, timeout, step=0.05):
        """Polls cond until it is true; returns the time it took, or None at the timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                if cond():
                    return time.monotonic() - t0
            except (apimod.NotSent, apimod.Unknown, KeyError, TypeError):
                pass
            time.sleep(step)
        return None

    def converged(self):
        st = [self.state(n)["store"] for n in self.nodes]
        return len({(s["digest"], s["patterns"]) for s in st}) == 1

    # Network faults between nodes a and b.
    def cut(self, a, b, both=True):
        self.net.set_blocked(a.i, self.net._blocked[a.i] | {b.i})
        if both:
            self.net.set_blocked(b.i, self.net._blocked[b.i] | {a.i})

    def heal(self):
        self.net.heal()

    def log_lines(self, node, since=0.0, needle=None):
        """node's log lines stamped at or after `since` (wall clock), containing needle."""
        with open(node.log, "rb") as f:
            text = f.read().decode(errors="replace")
        out = []
        for line in text.splitlines():
            t = log_time(line)
            if t is not None and t >= since - 0.0005 and (needle is None or needle in line):
                out.append(line)
        return out
