# SPDX-License-Identifier: Apache-2.0
"""Patterns as docs/PROTOCOL.md defines them, for the test's writers and its checker.

The writers only use ASCII letters, digits and '-' in strings and integers
for numbers, so Python's json.dumps(sort_keys=True, separators=(",", ":"))
writes exactly the canonical form of PROTOCOL.md ("Canonical serialisation"):
the checksum computed here is the daemon's, and every write sends it as
metadata.checksum, which the daemon verifies (a difference would be a
rejected record, which the run reports).
"""

import hashlib
import json

MOD = 1 << 256


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Write:
    """One change a writer sent: a record or a tombstone of `id`.

    `key` is (version, timestamp, checksum): PROTOCOL.md's "Which version
    wins" is the ordering of these tuples (equal checksums imply equal
    timestamps, since the timestamp is part of what is hashed)."""

    __slots__ = ("id", "version", "ts", "checksum", "deleted", "body")

    def __init__(self, id, version, ts, checksum, deleted, body):
        self.id, self.version, self.ts = id, version, ts
        self.checksum, self.deleted, self.body = checksum, deleted, body

    @property
    def key(self):
        return (self.version, self.ts, self.checksum)

    def __repr__(self):
        return "%s v%d ts=%d %s%s" % (self.id, self.version, self.ts, self.checksum[:12],
                                      " (tombstone)" if self.deleted else "")


def record(id, version, ts, writer, n, payload):
    """A live pattern; its body carries metadata.checksum."""
    obj = {
        "id": id,
        "agentId": "w%d" % writer,
        "type": "chaos",
        "data": {"w": writer, "n": n, "p": payload},
        "metadata": {"source": "chaos", "tags": ["chaos", "w%d" % writer]},
        "timestamp": ts,
        "version": version,
    }
    checksum = hashlib.sha256(canonical(obj).encode()).hexdigest()
    obj["metadata"]["checksum"] = checksum
    return Write(id, version, ts, checksum, False, canonical(obj))


def tombstone(id, version, ts):
    """A deletion, written as PROTOCOL.md's tombstone object (its own canonical form)."""
    body = canonical({"deleted": True, "id": id, "timestamp": ts, "version": version})
    return Write(id, version, ts, hashlib.sha256(body.encode()).hexdigest(), True, body)


def body_checksum(obj):
    """The checksum of a listed pattern, recomputed from its body."""
    meta = dict(obj.get("metadata", {}))
    meta.pop("checksum", None)
    o = dict(obj)
    o["metadata"] = meta
    return hashlib.sha256(canonical(o).encode()).hexdigest()


def digest_term(id, version, checksum):
    h = hashlib.sha256(id.encode() + b"\0" + str(version).encode() + b"\0" + checksum.encode())
    return int.from_bytes(h.digest(), "big")


def digest(rows):
    """ARCHITECTURE.md's store digest of live rows given as (id, version, checksum)."""
    total = 0
    for id, version, checksum in rows:
        total = (total + digest_term(id, version, checksum)) % MOD
    return "%064x" % total
