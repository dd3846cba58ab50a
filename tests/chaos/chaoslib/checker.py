# SPDX-License-Identifier: Apache-2.0
"""The check after the heal: every acknowledged write against every node's listing.

For each id the history knows, `best` is its greatest acknowledged write by
the apply rule (version, then timestamp, then checksum) and `maybe` the
writes that may have been applied (sent, no answer) and beat it. On every
node the id must then be:
- absent from the listing when the winner is a tombstone: `best` is one,
  or a `maybe` tombstone is;
- listed as exactly `best` (version, timestamp, checksum), or as one of the
  `maybe` records;
and the same on every node. Anything else is a finding:
- lost: the node holds something older than `best`, or nothing while
  `best` is a live record (an acknowledged write is gone);
- foreign: a record (or checksum) nobody wrote;
- diverged: nodes hold different winners.
Each listed body's checksum is recomputed, and each node's digest is
recomputed from its listing and compared with the digest and count it
reports in /v1/state (a node can report a stale digest).
"""

from . import patterns


class Report:
    def __init__(self):
        self.lost, self.foreign, self.diverged, self.corrupt = [], [], [], []
        self.digest_mismatch = []
        self.lost_ids = set()
        self.ids_checked = 0

    @property
    def ok(self):
        return not (self.lost or self.foreign or self.diverged or self.corrupt or
                    self.digest_mismatch)

    def lines(self, limit=20):
        out = []
        for name, items in (("lost", self.lost), ("foreign", self.foreign),
                            ("diverged", self.diverged), ("corrupt", self.corrupt),
                            ("digest", self.digest_mismatch)):
            for item in items[:limit]:
                out.append("%s: %s" % (name, item))
            if len(items) > limit:
                out.append("%s: ... %d more" % (name, len(items) - limit))
        return out


def index_listing(rows, node, report):
    """{id: (version, ts, checksum)} of a listing; bodies whose checksum is wrong are reported."""
    held = {}
    for obj in rows:
        meta = obj.get("metadata", {})
        ck = meta.get("checksum", "")
        if patterns.body_checksum(obj) != ck:
            report.corrupt.append("%s lists %s v%s with checksum %s, its body hashes to %s" %
                                  (node, obj.get("id"), obj.get("version"), ck,
                                   patterns.body_checksum(obj)))
        if obj["id"] in held:
            report.corrupt.append("%s lists %s twice" % (node, obj["id"]))
        held[obj["id"]] = (obj["version"], obj["timestamp"], ck)
    return held


def check(history, held, states, r):
    """held: {node: index_listing() of its listing}, states: {node: /v1/state document};
    the findings go to the Report r (which index_listing filled already)."""
    for node, h in held.items():
        st = states[node]["store"]
        mine = patterns.digest((id, v[0], v[2]) for id, v in h.items())
        if mine != st["digest"] or len(h) != st["patterns"]:
            r.digest_mismatch.append(
                "%s reports digest %s and %d patterns; its listing has %d patterns, digest %s" %
                (node, st["digest"], st["patterns"], len(h), mine))
    ids = history.ids()
    for h in held.values():
        ids |= set(h)
    r.ids_checked = len(ids)
    for id in sorted(ids):
        best, maybe = history.expected(id)
        allowed_live = {w.key for w in maybe if not w.deleted}
        absent_ok = not best or best.deleted or any(w.deleted for w in maybe)
        if best and not best.deleted:
            allowed_live.add(best.key)
        seen = {}
        for node, h in held.items():
            got = h.get(id)
            seen[node] = got
            if got is None:
                if not absent_ok:
                    r.lost_ids.add(id)
                    r.lost.append("%s has no %s; acknowledged: %r" % (node, id, best))
                continue
            if got in allowed_live:
                continue
            if best and got < best.key:
                r.lost_ids.add(id)
                r.lost.append("%s holds %s v%d ts=%d %s, older than the acknowledged %r" %
                              (node, id, got[0], got[1], got[2][:12], best))
            else:
                r.foreign.append("%s holds %s v%d ts=%d %s, which no writer sent "
                                 "(acknowledged: %r, maybe: %r)" %
                                 (node, id, got[0], got[1], got[2][:12], best, maybe))
        if len(set(seen.values())) > 1:
            r.diverged.append("%s: %s" % (id, ", ".join(
                "%s=%s" % (n, "absent" if v is None else "v%d/%s" % (v[0], v[2][:8]))
                for n, v in sorted(seen.items()))))
    return r
