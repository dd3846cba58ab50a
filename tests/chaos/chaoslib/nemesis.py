# SPDX-License-Identifier: Apache-2.0
"""Faults for a bounded time, chosen by a seeded random generator, then a heal.

Runs on the main thread (it restarts daemons; see cluster.py). Faults:
- kill: SIGKILL a daemon, restart it after a while (same config and data);
- stop: SIGSTOP a daemon for 0.3-2.5 x idleTimeout, then SIGCONT;
- partition: a random split, one node isolated, one link of the topology
  cut, or one direction of a link dropped;
- link: loss (1-10 %), a throttle, a delay (netem only) on one node's data link.
Several run at once (at most half the nodes down, two partitions, one link
fault per node). Each is undone when its time is up, and heal() undoes all.
"""

import collections
import random
import time

from .netns import Shape


class Fault:
    def __init__(self, kind, desc, until, revert):
        self.kind, self.desc, self.until, self.revert = kind, desc, until, revert


class Nemesis:
    def __init__(self, cluster, net, edges, seed, log_path, mean_gap=1.2):
        self.cluster, self.net, self.edges = cluster, net, edges
        self.rng = random.Random("%s/nemesis" % seed)
        self.mean_gap = mean_gap
        self.active = []
        self.blocks = {}  # fault -> set of (dst, src): dst drops what src sends
        self.figures = collections.Counter()
        self.loss_settings, self.rate_settings, self.delay_settings = [], [], []
        self.stop_lengths = []
        self.max_active = 0
        self.t0 = time.monotonic()
        self._log = open(log_path, "w", buffering=1)
        self.idle_s = cluster.idle_timeout_ms / 1000.0
        n = len(cluster.nodes)
        self.max_down = max(1, (n - 1) // 2)

    def log(self, msg):
        self._log.write("%8.3f %s\n" % (time.monotonic() - self.t0, msg))

    # Bookkeeping of what is down or shaped.
    def _down(self):
        return [f for f in self.active if f.kind in ("kill", "stop")]

    def _busy_nodes(self):
        return {n for f in self.active if f.kind in ("kill", "stop", "link") for n in f.nodes}

    def _apply_blocks(self):
        per = collections.defaultdict(set)
        for pairs in self.blocks.values():
            for dst, src in pairs:
                per[dst].add(src)
        for i in range(self.net.n):
            self.net.set_blocked(i, per.get(i, set()))

    # Faults.
    def _kill(self, now):
        up = [n for n in self.cluster.nodes if n.state == "up" and n not in self._busy_nodes()]
        if not up or len(self._down()) >= self.max_down:
            return None
        node = self.rng.choice(up)
        node.kill9()
        down = self.rng.uniform(0.2, 3.0)
        self.figures["kills"] += 1

        def revert():
            node.start()
            self.figures["restarts"] += 1

        f = Fault("kill", "kill -9 %s, restart in %.1f s" % (node.name, down), now + down, revert)
        f.nodes = [node]
        return f

    def _stop(self, now):
        up = [n for n in self.cluster.nodes if n.state == "up" and n not in self._busy_nodes()]
        if not up or len(self._down()) >= self.max_down:
            return None
        node = self.rng.choice(up)
        length = self.rng.uniform(0.3, 2.5) * self.idle_s
        node.sigstop()
        self.figures["stops"] += 1
        if length > self.idle_s:
            self.figures["stops beyond idleTimeout"] += 1
        self.stop_lengths.append(length)
        f = Fault("stop", "SIGSTOP %s for %.1f s" % (node.name, length), now + length,
                  node.sigcont)
        f.nodes = [node]
        return f

    def _partition(self, now):
        if sum(1 for f in self.active if f.kind == "partition") >= 2:
            return None
        n = self.net.n
        how = self.rng.choice(["split", "isolate", "cut", "oneway"])
        if how == "split":
            side = set(self.rng.sample(range(n), self.rng.randint(1, n // 2)))
            pairs = {(a, b) for a in range(n) for b in range(n) if (a in side) != (b in side)}
            desc = "split %s | %s" % (sorted(side), sorted(set(range(n)) - side))
        elif how == "isolate":
            a = self.rng.randrange(n)
            pairs = {(a, b) for b in range(n) if b != a} | {(b, a) for b in range(n) if b != a}
            desc = "isolate n%d" % a
        elif how == "cut":
            a, b = self.rng.choice(self.edges)
            pairs = {(a, b), (b, a)}
            desc = "cut n%d-n%d" % (a, b)
        else:
            a, b = self.rng.choice(self.edges)
            if self.rng.random() < 0.5:
                a, b = b, a
            pairs = {(a, b)}
            desc = "one way: n%d hears nothing from n%d" % (a, b)
        length = self.rng.uniform(1.0, 8.0)
        self.figures["partitions"] += 1
        self.figures["partitions: " + how] += 1
        f = Fault("partition", "%s for %.1f s" % (desc, length), now + length, None)
        self.blocks[f] = pairs
        self._apply_blocks()

        def revert():
            del self.blocks[f]
            self._apply_blocks()

        f.revert = revert
        f.nodes = []
        return f

    def _link(self, now):
        free = [n for n in self.cluster.nodes if n not in self._busy_nodes()]
        if not free:
            return None
        node = self.rng.choice(free)
        s = Shape()
        r = self.rng.random()
        if r < 0.5 or (r >= 0.8 and not self.net.netem):
            s.loss = round(self.rng.uniform(1.0, 10.0), 1)
            self.loss_settings.append(s.loss)
        elif r < 0.8:
            s.rate = self.rng.choice([128, 256, 512, 1024, 4096])
            self.rate_settings.append(s.rate)
        else:
            s.delay = self.rng.randint(5, 150)
            s.jitter = self.rng.randint(0, s.delay // 2)
            self.delay_settings.append(s.delay)
        if self.net.netem and self.rng.random() < 0.3:
            s.loss = s.loss or round(self.rng.uniform(1.0, 10.0), 1)
            s.delay = s.delay or self.rng.randint(5, 50)
        length = self.rng.uniform(2.0, 10.0)
        self.net.set_shape(node.i, s)
        self.figures["link faults"] += 1
        f = Fault("link", "%s on %s for %.1f s" % (s, node.name, length), now + length,
                  lambda: self.net.set_shape(node.i, None))
        f.nodes = [node]
        return f

    def step(self, now):
        """Ends the faults whose time is up, then maybe starts one."""
        for f in [f for f in self.active if f.until <= now]:
            self.active.remove(f)
            f.revert()
            self.log("end   " + f.desc)
        for node in self.cluster.nodes:
            if node.state == "starting" and node._count_listening() > node.listen_lines:
                node.wait_listening(0)
                self.log("up    %s" % node.name)
        if now < self.next_at:
            return
        self.next_at = now + self.rng.expovariate(1.0 / self.mean_gap)
        kind = self.rng.choices(["kill", "stop", "partition", "link"], [3, 2, 3, 3])[0]
        f = getattr(self, "_" + kind)(now)
        if f is not None:
            self.active.append(f)
            self.max_active = max(self.max_active, len(self.active))
            self.log("start " + f.desc)

    def run(self, seconds, should_stop=lambda: False):
        end = time.monotonic() + seconds
        self.next_at = time.monotonic() + self.rng.uniform(0.2, 1.0)
        while time.monotonic() < end and not should_stop():
            self.step(time.monotonic())
            time.sleep(0.05)

    def heal(self, timeout=30.0):
        """Undoes every fault, waits until every daemon listens again."""
        for f in list(self.active):
            self.active.remove(f)
            f.revert()
            self.log("heal  " + f.desc)
        self.net.heal()
        for node in self.cluster.nodes:
            if node.state == "starting":
                node.wait_listening(timeout)
        self.log("healed")

    def close(self):
        self._log.close()
