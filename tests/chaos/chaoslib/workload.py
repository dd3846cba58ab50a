# SPDX-License-Identifier: Apache-2.0
"""Concurrent writers: creates, updates, deletes, resurrections, stale writes and
same-id conflicts sent to different nodes, through POST /v1/patterns.

Writers choose versions and timestamps themselves (a shared counter per id),
so the history knows every change exactly; a deletion is sent as the
tombstone object of PROTOCOL.md, as peers send it. A conflict is two
different records of one id at the same version, posted to two different
nodes, half of the time with the same timestamp (the checksum decides).
"""

import random
import string
import threading
import time

from . import api as apimod
from . import patterns

KINDS = [("create", 25), ("update", 40), ("delete", 10), ("resurrect", 7), ("conflict", 10),
         ("stale", 8)]


class IdSpace:
    """Which ids exist, which are deleted, and the highest version handed out for each."""

    def __init__(self, max_ids):
        self._lock = threading.Lock()
        self.max_ids = max_ids
        self._next = 0
        self.top = {}
        self._live, self._live_at = [], {}
        self._dead, self._dead_at = [], {}

    @staticmethod
    def _add(lst, at, id):
        at[id] = len(lst)
        lst.append(id)

    @staticmethod
    def _remove(lst, at, id):
        k = at.pop(id)
        last = lst.pop()
        if last != id:
            lst[k] = last
            at[last] = k

    def _pick(self, rng, lst):
        if not lst:
            return None
        if rng.random() < 0.5:  # hot ids: the newest ones, where writers collide
            return lst[rng.randrange(max(0, len(lst) - 200), len(lst))]
        return lst[rng.randrange(len(lst))]

    def full(self):
        """Whether max_ids ids exist (then writers update instead of creating, so the
        history's memory stays bounded however long the run)."""
        return self._next >= self.max_ids

    def take(self, rng, kind, busy):
        """Reserves a change of `kind`: (id, version, is_delete), or None when no id fits.
        `busy` holds the ids already in the caller's batch."""
        with self._lock:
            if kind == "create":
                id = "k%07d" % self._next
                self._next += 1
                self.top[id] = 1
                self._add(self._live, self._live_at, id)
                return id, 1, False
            src = self._dead if kind == "resurrect" else self._live
            id = self._pick(rng, src)
            if id is None or id in busy:
                return None
            if kind == "stale":
                return id, max(1, self.top[id] - rng.randint(1, 2)), False
            v = self.top[id] + 1
            self.top[id] = v
            if kind == "delete":
                self._remove(self._live, self._live_at, id)
                self._add(self._dead, self._dead_at, id)
                return id, v, True
            if kind == "resurrect":
                self._remove(self._dead, self._dead_at, id)
                self._add(self._live, self._live_at, id)
            return id, v, False


class Writer(threading.Thread):
    def __init__(self, k, seed, nodes, ids, history, stop, max_batch=8):
        super().__init__(name="writer-%d" % k, daemon=True)
        self.k, self.nodes, self.ids, self.history, self.stop_ev = k, nodes, ids, history, stop
        self.rng = random.Random("%s/writer/%d" % (seed, k))
        self.max_batch = max_batch
        self.apis = {n.name: n.api() for n in nodes}
        self.n = 0
        self.requests = 0
        self.error = None

    def _payload(self):
        n = self.rng.randint(8, 48)
        return "".join(self.rng.choice(string.ascii_letters) for _ in range(n))

    def _make(self, kind, busy):
        t = self.ids.take(self.rng, kind, busy)
        if t is None:
            return None
        id, version, delete = t
        ts = int(time.time() * 1000)
        self.n += 1
        if delete:
            return patterns.tombstone(id, version, ts)
        return patterns.record(id, version, ts, self.k, self.n, self._payload())

    def _post(self, node, items):
        """items: [(kind, Write)], distinct ids."""
        body = "\n".join(w.body for _, w in items) + "\n"
        for _, w in items:
            w.body = None  # the history keeps writes for the whole run: not their text
        self.requests += 1
        try:
            status, doc = self.apis[node.name].json("POST", "/v1/patterns", body.encode())
        except apimod.NotSent:
            for kind, w in items:
                self.history.not_sent(node.name, kind, w)
            return
        except (apimod.Unknown, ValueError):
            for kind, w in items:
                self.history.unknown(node.name, kind, w)
            return
        if status not in (200, 400) or not isinstance(doc, dict) or "rejected" not in doc:
            # 503 (node not running) or 500 (the transaction was rolled back): nothing applied.
            for kind, w in items:
                self.history.not_sent(node.name, kind, w)
            return
        refused = {r["index"]: r for r in doc["rejected"]}
        outcomes = iter(doc.get("outcomes", []))
        for idx, (kind, w) in enumerate(items):
            if idx in refused:
                r = refused[idx]
                self.history.rejected(node.name, kind, w, "%s: %s" % (r.get("field"),
                                                                       r.get("error")))
            else:
                self.history.acked(node.name, kind, w, next(outcomes, "?"))

    def run(self):
        kinds = [k for k, _ in KINDS]
        weights = [w for _, w in KINDS]
        try:
            while not self.stop_ev.is_set():
                node = self.rng.choice(self.nodes)
                batch, twins, busy = [], [], set()
                for _ in range(self.rng.randint(1, self.max_batch)):
                    kind = self.rng.choices(kinds, weights)[0]
                    if kind == "create" and self.ids.full():
                        kind = "update"
                    w = self._make(kind, busy)
                    if w is None:
                        continue
                    busy.add(w.id)
                    batch.append((kind, w))
                    if kind == "conflict":
                        ts = w.ts if self.rng.random() < 0.5 else w.ts + self.rng.randint(-3, 3)
                        self.n += 1
                        twin = patterns.record(w.id, w.version, max(0, ts), self.k, self.n,
                                               self._payload())
                        twins.append(("conflict", twin))
                if batch:
                    self._post(node, batch)
                if twins:
                    other = self.rng.choice([n for n in self.nodes if n is not node])
                    self._post(other, twins)
        except Exception as e:  # a bug in the test itself: report it, do not hang
            self.error = "%s: %r" % (self.name, e)
        finally:
            for a in self.apis.values():
                a.close()


def start_writers(n, seed, nodes, history, stop, max_ids):
    ids = IdSpace(max_ids)
    ws = [Writer(k, seed, nodes, ids, history, stop) for k in range(n)]
    for w in ws:
        w.start()
    return ws, ids
