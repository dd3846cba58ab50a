# SPDX-License-Identifier: Apache-2.0
"""One chaos run: the network, the daemons, writers and faults, the heal, the check."""

import collections
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import traceback

from . import bed, checker, cluster, history, nemesis, netns, workload

SKIP = 77

# Log lines of issue 13 item 2: a refused duplicate's bytes parsed as frames.
FALSE_PROTO_RE = re.compile(r"closing connection with \?: (?!duplicate connection)|"
                            r"flags must be 0|unknown frame type|the frame reader failed earlier")
# A sanitizer build's reports (make test-sanitize runs this test too).
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread)Sanitizer|runtime error: ")


def ring_with_chord(n):
    """Edges of a ring plus one chord (0 to n/2), and who dials: both ends of a
    ring link dial each other, only node 0 dials over the chord."""
    edges = [(i, (i + 1) % n) for i in range(n)]
    dials = collections.defaultdict(list)
    for a, b in edges:
        dials[a].append(b)
        dials[b].append(a)
    if n >= 4:
        edges.append((0, n // 2))
        dials[0].append(n // 2)
    return edges, dials


class Run:
    def __init__(self, args):
        self.a = args
        self.seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
        self.net = self.cl = self.hist = self.nem = None
        self.writers = []
        self.stop_writers = threading.Event()
        self.figures = collections.OrderedDict()
        self.failures = []
        self.workdir = None

    def say(self, msg):
        print("chaos: " + msg, flush=True)

    # ------------------------------------------------------------------ setup
    def setup(self):
        gone = netns.remove_stale()
        if gone:
            self.say("removed namespaces of an earlier run that died: %s" % " ".join(gone))
        self.workdir = tempfile.mkdtemp(prefix="agentsync-chaos-")
        self.net = netns.Net(self.a.nodes)
        self.net.create()
        self.cl = cluster.Cluster(self.net, self.workdir, self.a.bin_dir, self.a.idle_timeout)
        self.edges, dials = ring_with_chord(self.a.nodes)
        self.cl.configure(dials)
        self.hist = history.History(os.path.join(self.workdir, "history.log"))
        self.net.enter_ctl()
        self.cl.start_all()
        degree = collections.Counter()
        for a, b in self.edges:
            degree[a] += 1
            degree[b] += 1
        self.wait(lambda: all(self.connected(n) >= degree[n.i] for n in self.cl.nodes), 30,
                  "every link of the topology up")

    def connected(self, node):
        st = node.api().state()
        return sum(1 for p in st["peers"].values() if p["connected"])

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return time.monotonic()
            except Exception:  # not up yet
                pass
            time.sleep(0.1)
        raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))

    # --------------------------------------------------------------- workload
    def workload_and_faults(self):
        self.nem = nemesis.Nemesis(self.cl, self.net, self.edges, self.seed,
                                   os.path.join(self.workdir, "nemesis.log"))
        self.writers, self.ids = workload.start_writers(self.a.writers, self.seed, self.cl.nodes,
                                                        self.hist, self.stop_writers,
                                                        self.a.max_ids)
        t0 = time.monotonic()
        self.nem.run(self.a.duration, should_stop=lambda: any(w.error for w in self.writers))
        self.stop_writers.set()
        for w in self.writers:
            w.join(10)
        self.t_last = time.monotonic()  # every writer has its last answer (or gave up)
        self.figures["fault time"] = "%.1f s" % (self.t_last - t0)
        for w in self.writers:
            if w.error:
                raise RuntimeError("writer failed: " + w.error)
        active = [f.desc for f in self.nem.active]
        self.figures["faults active at the heal"] = "%d%s%s" % (
            len(active), ": " if active else "", "; ".join(active))
        t_heal = time.monotonic()
        self.nem.heal()
        t_up = time.monotonic()
        self.figures["heal (undo faults, restarts listening)"] = "%.2f s" % (t_up - t_heal)
        t_conv = self.converge(t_up)
        return t_heal, t_up, t_conv

    def states(self):
        return {n.name: n.api(10).state() for n in self.cl.nodes}

    def converge(self, since):
        """Waits (bounded) until every node reports the same digest and count."""
        deadline = since + self.a.converge_timeout
        while time.monotonic() < deadline:
            try:
                st = self.states()
                if len({(s["store"]["digest"], s["store"]["patterns"]) for s in st.values()}) == 1:
                    return time.monotonic()
            except Exception:
                pass
            time.sleep(0.1)
        self.failures.append("no convergence within %.0f s of the heal" % self.a.converge_timeout)
        return None

    # ------------------------------------------------------------------ check
    def check(self, label="check", verdicts=("ok", "FAILED")):
        rep = checker.Report()
        held = {}
        for n in self.cl.nodes:  # one listing in memory at a time
            held[n.name] = checker.index_listing(n.api(120).listing(), n.name, rep)
        states = self.states()
        checker.check(self.hist, held, states, rep)
        self.say("%s: %d ids, %s" % (label, rep.ids_checked, verdicts[0] if rep.ok else
                                     verdicts[1]))
        for line in rep.lines():
            self.say("  " + line)
        return rep, states

    def self_test(self, states):
        """Deletes one row from one node's store behind its back and checks that the
        checker reports exactly that loss. The node stays isolated from its peers
        while it runs again, so nothing can repair it before the check."""
        rng = random.Random("%s/self-test" % self.seed)
        node = rng.choice(self.cl.nodes)
        live = sorted(id for id in self.hist.ids() if self.hist.expected(id)[0] and
                      not self.hist.expected(id)[0].deleted and not self.hist.expected(id)[1])
        if not live:
            self.failures.append("self-test: no live id to delete")
            return
        victim = rng.choice(live)
        others = [m.i for m in self.cl.nodes if m is not node]
        for j in others:
            self.net.set_blocked(j, {node.i})
        self.net.set_blocked(node.i, set(others))
        node.terminate()
        db = sqlite3.connect(node.store_path)
        deleted = db.execute("DELETE FROM patterns WHERE id = ?", (victim,)).rowcount
        db.commit()
        db.close()
        node.start()
        node.wait_listening()
        rep, after = self.check("self-test: row %s deleted from %s's store" % (victim, node.name),
                                ("nothing found", "found"))
        self.net.heal()
        found = [l for l in rep.lost if l.startswith("%s has no %s;" % (node.name, victim))]
        digest = [l for l in rep.digest_mismatch if l.startswith(node.name + " ")]
        stale = after[node.name]["store"]["digest"] == states[node.name]["store"]["digest"]
        if deleted != 1 or len(found) != 1 or len(rep.lost) != 1 or len(digest) != 1:
            self.failures.append("self-test: the checker did not report exactly the planted "
                                 "loss (%d row deleted, %d lost, %d digest findings)" %
                                 (deleted, len(rep.lost), len(rep.digest_mismatch)))
        else:
            self.say("self-test: ok, the checker reported the loss of %s on %s and its digest"
                     " (%s still reports %s digest)" % (victim, node.name, node.name,
                                                        "its old" if stale else "a new"))

    # ---------------------------------------------------------------- figures
    def scan_logs(self):
        dup = false = warn = 0
        for n in self.cl.nodes:
            with open(n.log, "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    if "duplicate connection" in line:
                        dup += 1
                    if FALSE_PROTO_RE.search(line):
                        false += 1
                    if " WARN " in line or " ERROR " in line:
                        warn += 1
        return dup, false, warn

    def scan_race_warnings(self):
        """Lines that log the expected dialling race as a fault, or name no peer."""
        out = []
        for n in self.cl.nodes:
            with open(n.log, "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    if ((" WARN " in line and "duplicate connection" in line) or
                            "connection with ?" in line):
                        out.append("%s: %s" % (n.name, line.strip()))
        return out

    def start_times(self):
        """(seconds, node, log stamp) from each start's "config" log line to its
        "listening" line (issue 13 item 5 measured them the same way), sorted."""
        out = []
        for n in self.cl.nodes:
            cfg = None
            with open(n.log, "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    if " INFO config " in line and ": node " in line:
                        cfg = line
                    elif " INFO listening " in line and cfg is not None:
                        t0, t1 = bed.log_time(cfg), bed.log_time(line)
                        if t0 is not None and t1 is not None:
                            out.append((t1 - t0, n.name, cfg.split(" ", 1)[0]))
                        cfg = None
        return sorted(out)

    def report_figures(self, t_heal, t_up, t_conv):
        h, nm, f = self.hist, self.nem, self.figures
        f["seed"] = self.seed
        f["nodes"] = "%d (ring + chord: %s)" % (self.a.nodes, " ".join(
            "n%d-n%d" % e for e in self.edges))
        f["writers"] = self.a.writers
        f["requests"] = sum(w.requests for w in self.writers)
        f["acknowledged writes"] = h.counts["acked"]
        f["  by kind"] = ", ".join("%s %d" % (k, h.counts["acked:" + k])
                                   for k, _ in workload.KINDS)
        f["  outcomes"] = ", ".join("%s %d" % kv for kv in sorted(h.outcomes.items()))
        f["writes without answer (maybe applied)"] = h.counts["unknown"]
        f["writes not sent (node down)"] = h.counts["not_sent"]
        f["writes rejected"] = h.counts["rejected"]
        f["ids"] = len(h.ids())
        for k in ("kills", "restarts", "stops", "stops beyond idleTimeout", "partitions",
                  "partitions: split", "partitions: isolate", "partitions: cut",
                  "partitions: oneway", "link faults"):
            f[k] = nm.figures[k]
        f["loss settings (%)"] = _spread(nm.loss_settings) + (
            " (netem)" if self.net.netem else " (nftables, no sch_netem in this kernel)")
        f["throttle settings (kbit/s)"] = _spread(nm.rate_settings) + (
            " (netem)" if self.net.netem else " (tbf)")
        f["delay settings (ms)"] = (_spread(nm.delay_settings) if self.net.netem else
                                    "none: this kernel has no sch_netem")
        f["most faults at once"] = nm.max_active
        st = self.start_times()
        if st:
            slow = [x for x in st if x[0] >= 1.0]
            f["daemon starts: config line to listening"] = (
                "%d starts, median %.3f s, max %.3f s, %d at 1 s or more%s%s" %
                (len(st), st[len(st) // 2][0], st[-1][0], len(slow), ": " if slow else "",
                 ", ".join("%s %.2f s at %s" % (n, t, stamp) for t, n, stamp in slow[-5:])))
        dup, false, warn = self.scan_logs()
        f["log: duplicate-connection refusals"] = dup
        f["log: false protocol errors (issue 13 item 2)"] = false
        if false:
            self.failures.append("%d false protocol-error lines after refused duplicates "
                                 "(issue 13 item 2)" % false)
        race = self.scan_race_warnings()
        if race:
            self.failures.append("the race of two peers dialling each other logged as a "
                                 "warning or with '?' as the peer (issue 15 item 6): %s" %
                                 race[0])
        f["log: WARN/ERROR lines"] = warn
        if t_conv is not None:
            f["time to converge after the heal"] = (
                "%.2f s (%.2f s after every daemon listened, %.2f s after the last write)" %
                (t_conv - t_heal, t_conv - t_up, t_conv - self.t_last))
        else:
            f["time to converge after the heal"] = "did not converge"

    def sanitizer_reports(self):
        """Reports of a sanitizer build, read after every daemon exited (leaks show then)."""
        for n in self.cl.nodes if self.cl else []:
            with open(n.log, "rb") as f:
                for line in f.read().decode(errors="replace").splitlines():
                    if SANITIZER_RE.search(line):
                        self.failures.append("%s: sanitizer report in %s: %s" %
                                             (n.name, n.log, line.strip()))
                        break

    def liveness(self):
        for n in self.cl.nodes:
            bad = n.unexpected_exits()
            if bad or not n.running:
                self.failures.append("%s: daemon exited unexpectedly (status %s)\n%s" %
                                     (n.name, bad or "not running", cluster.tail(n.log)))

    # ------------------------------------------------------------------- main
    def main(self):
        self.say("seed %d (replay: --seed %d --duration %s --nodes %d --writers %d)" %
                 (self.seed, self.seed, self.a.duration, self.a.nodes, self.a.writers))
        reason = netns.unavailable_reason()
        if reason:
            self.say("SKIP: cannot make network namespaces here: " + reason)
            return SKIP
        rc = 1
        try:
            self.setup()
            self.say("%d daemons up in namespaces %s-*; faults for %s s" %
                     (self.a.nodes, self.net.prefix, self.a.duration))
            t_heal, t_up, t_conv = self.workload_and_faults()
            rep, states = self.check()
            self.liveness()
            if not rep.ok:
                self.failures.append("the check found %d lost, %d foreign, %d diverged, "
                                     "%d corrupt, %d digest findings" %
                                     (len(rep.lost), len(rep.foreign), len(rep.diverged),
                                      len(rep.corrupt), len(rep.digest_mismatch)))
            for node, w, err in self.hist.rejections[:5]:
                self.failures.append("%s rejected %r: %s" % (node, w, err))
            self.report_figures(t_heal, t_up, t_conv)
            self.figures["lost writes (ids whose acknowledged write is missing somewhere)"] = (
                len(rep.lost_ids))
            self.figures["diverged ids"] = len(rep.diverged)
            self.figures["digest findings"] = len(rep.digest_mismatch)
            if self.a.self_test:
                self.self_test(states)
            rc = 1 if self.failures else 0
        except KeyboardInterrupt:
            self.failures.append("interrupted")
        except Exception as e:
            self.failures.append("error: %s" % e)
            traceback.print_exc()
        finally:
            self.cleanup()
        self.sanitizer_reports()
        self.print_figures()
        for f in self.failures:
            self.say("FAIL: " + f)
        if self.failures:
            rc = 1
        if self.workdir and (rc != 0 or self.a.keep):
            self.say("run directory kept: %s (logs, history.log, nemesis.log)" % self.workdir)
        elif self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.say("%s (seed %d)" % ("PASS" if rc == 0 else "FAIL", self.seed))
        return rc

    def print_figures(self):
        if not self.figures:
            return
        width = max(len(k) for k in self.figures)
        print("chaos figures:")
        for k, v in self.figures.items():
            print("  %-*s  %s" % (width, k, v))
        sys.stdout.flush()

    def cleanup(self):
        self.stop_writers.set()
        for w in self.writers:
            w.join(5)
        if self.cl:
            self.cl.stop()
        if self.nem:
            self.nem.close()
        if self.hist:
            self.hist.close()
        if self.net:
            self.net.destroy()


def _spread(values):
    if not values:
        return "none"
    return "%d settings, %s-%s" % (len(values), _fmt(min(values)), _fmt(max(values)))


def _fmt(x):
    return ("%.1f" % x) if isinstance(x, float) else str(x)


def install_signal_handlers():
    def on_signal(sig, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
