# SPDX-License-Identifier: Apache-2.0
"""The fault sequence that leaves node a holding a dead connection of b's while b
dials anew (issue 13 item 1; item 2's refusals come from it too).

Only b dials a. With a small stream of writes to a (so that a sends batches
to b all along):
  1. SIGSTOP b for 0.8 x idleTimeout: the connection survives, but a's
     packets wait for their acks, so a's RTT estimate (and with it 3 x PTO,
     ngtcp2's floor for the idle timeout) grows past idleTimeout;
  2. SIGSTOP a for 1.5 x idleTimeout: b's side of the connection times out
     and b redials; a's side does not (its idle timer is now 3 x PTO);
  3. partition a <-> b and SIGCONT a behind it, so that no stateless reset
     from b tells a that its connection is gone; heal after `partition` s.
"""

import threading
import time


class Load:
    """Writes a few records to `node` every 10 ms until stopped (errors ignored:
    the node may be stopped)."""

    def __init__(self, bed, node):
        self.bed, self.node = bed, node
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                self.bed.put(self.node, self.bed.records("load", 5))
            except Exception:
                pass
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)
        return False


def round_until_heal(bed, a, b, idle, partition=1.0, behind_partition=None):
    """Runs steps 1-3; returns (a's RTT estimate for b in ms before a's stop, whether a
    still counted b connected just before the heal, the heal's wall-clock time).
    behind_partition() runs while a is partitioned (e.g. writes to b)."""
    b.sigstop()
    time.sleep(0.8 * idle)
    b.sigcont()
    time.sleep(0.3)
    rtt = bed.peer(a, b)["latency"]
    a.sigstop()
    time.sleep(1.5 * idle)
    bed.cut(a, b)
    a.sigcont()
    t = time.monotonic()
    if behind_partition:
        behind_partition()
    time.sleep(max(0.0, partition - (time.monotonic() - t)))
    a_holds = bed.peer(a, b)["connected"]
    heal = time.time()
    bed.heal()
    return rtt, a_holds, heal
