# SPDX-License-Identifier: Apache-2.0
"""What the writers sent and what the daemons answered.

Per id the history keeps what the checker needs, in bounded memory:
- `best`: the greatest acknowledged write (by the apply rule), and
- `maybe`: the writes that may have been applied (sent, no answer) and beat
  `best`; smaller ones can no longer win and are dropped.
Every write also goes, one line each, to a history file in the run's
directory (kept when the run fails) for a post-mortem.
"""

import collections
import threading


class History:
    def __init__(self, path):
        self._lock = threading.Lock()
        self.best = {}
        self.maybe = collections.defaultdict(list)
        self.counts = collections.Counter()  # acked, unknown, not_sent, rejected, by kind
        self.outcomes = collections.Counter()  # the daemons' "outcomes" of acked writes
        self.rejections = []  # (node, write, error): a record the daemon refused
        self._f = open(path, "w", buffering=1 << 20)

    def close(self):
        with self._lock:
            self._f.close()

    def _log(self, status, node, kind, w):
        self._f.write("%s %s %s %s %d %d %s %d\n" % (status, node, kind, w.id, w.version, w.ts,
                                                      w.checksum, w.deleted))

    def acked(self, node, kind, w, outcome):
        with self._lock:
            self.counts["acked"] += 1
            self.counts["acked:" + kind] += 1
            self.outcomes[outcome] += 1
            self._log("ack", node, kind, w)
            b = self.best.get(w.id)
            if b is None or w.key > b.key:
                self.best[w.id] = w
                m = self.maybe.get(w.id)
                if m:
                    m[:] = [x for x in m if x.key > w.key]

    def unknown(self, node, kind, w):
        with self._lock:
            self.counts["unknown"] += 1
            self._log("unknown", node, kind, w)
            b = self.best.get(w.id)
            if b is None or w.key > b.key:
                self.maybe[w.id].append(w)

    def not_sent(self, node, kind, w):
        with self._lock:
            self.counts["not_sent"] += 1
            self._log("notsent", node, kind, w)

    def rejected(self, node, kind, w, error):
        with self._lock:
            self.counts["rejected"] += 1
            self._log("rejected", node, kind, w)
            if len(self.rejections) < 50:
                self.rejections.append((node, w, error))

    def ids(self):
        with self._lock:
            return set(self.best) | {k for k, v in self.maybe.items() if v}

    def expected(self, id):
        """(best acknowledged write or None, [writes that may have been applied and beat it])."""
        with self._lock:
            return self.best.get(id), list(self.maybe.get(id, ()))
