# SPDX-License-Identifier: Apache-2.0
"""agentsync backup and restore, black box, with real daemons:

1. Two nodes a and b in sync; b's 100 patterns have reached a.
2. While a thread writes to a (batches of 50, one transaction each),
   `agentsync backup --out FILE` copies a's store; writes complete during the
   backup, so it is taken under load.
3. The backup opens (Python's sqlite3: integrity_check ok) and is one
   consistent state: every batch is in it whole or not at all, the meta
   counters (seq, live) equal the rows, and the store id is a's.
4. More writes after the backup: 100 on b, 50 on a. Then a is stopped and
   `agentsync restore` puts the backup in a new data directory (a second
   restore into it is refused, and the original store is untouched).
5. A daemon started on the restored directory keeps a's store id and
   catches up from b: it ends with every pattern of the backup and every
   pattern b wrote, and b sent it only what b wrote after the backup (its
   cursor of b came back with the store: no full resync), plus what a itself
   wrote after the backup: b holds those, and since the restored store went
   back (its new epoch starts below b's cursor of it: docs/PROTOCOL.md,
   "Store epochs") b sends a's own changes back to it once: all it holds of
   a's (it cannot tell which the restored store lacks), and of its own only
   what a's cursor of b does not cover."""
import json
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agsproc as A  # noqa: E402


def ids(d):
    st, _, body = d.request("GET", "/v1/patterns")
    A.check(st == 200, "GET /v1/patterns on %s: %d" % (d.name, st))
    return {p["id"] for p in json.loads(body)}


def put(d, recs):
    st, _, body = d.request("POST", "/v1/patterns", recs)
    A.check(st == 200 and len(json.loads(body)["accepted"]) == len(recs),
            "put on %s: %d %s" % (d.name, st, body[:200]))


class Load(threading.Thread):
    """Writes batches of 50 to a node until stopped (at most 400 batches)."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.batches, self.stop, self.error = d, 0, False, None

    def run(self):
        try:
            while not self.stop and self.batches < 400:
                put(self.d, [A.pattern(i, "load%d" % self.batches) for i in range(50)])
                self.batches += 1
        except SystemExit as e:  # A.check failed in the thread
            self.error = str(e)


def check_backup(path, store_id):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    A.check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok",
            "the backup fails integrity_check")
    A.check(db.execute("PRAGMA journal_mode").fetchone()[0] == "delete",
            "the backup is not a single file (journal mode DELETE)")
    meta = dict(db.execute("SELECT k, v FROM meta WHERE k IN ('store_id', 'seq', 'live')"))
    A.check(meta.get("store_id") == store_id, "backup store id %s, a's is %s" %
            (meta.get("store_id"), store_id))
    live = db.execute("SELECT count(*) FROM patterns WHERE st = 0").fetchone()[0]
    top = db.execute("SELECT coalesce(max(seq), 0) FROM patterns").fetchone()[0]
    A.check(meta["live"] == live, "backup meta live %s, %d live rows" % (meta["live"], live))
    A.check(meta["seq"] >= top, "backup meta seq %s behind row seq %d" % (meta["seq"], top))
    per = {}
    for (pid,) in db.execute("SELECT id FROM patterns WHERE st = 0 AND id LIKE 'load%'"):
        b = pid.split("-")[0]
        per[b] = per.get(b, 0) + 1
    torn = {b: n for b, n in per.items() if n != 50}
    A.check(not torn, "batches torn in the backup: %s" % torn)
    got = {r[0] for r in db.execute("SELECT id FROM patterns WHERE st = 0")}
    db.close()
    return got, len(per)


def main():
    wd = A.workdir("backup")
    try:
        certs = os.path.join(wd, "certs")
        A.make_certs(certs, ["a", "b"])
        a = A.Daemon(wd, "a", certs).start()
        b = A.Daemon(wd, "b", certs).start()
        a.add_peer(b)
        put(b, [A.pattern(i, "b-before") for i in range(100)])
        A.wait_for("a to hold b's 100", lambda: len(ids(a)) == 100)
        store_id = a.state()["store"]["id"]

        load = Load(a)
        load.start()
        A.wait_for("the load to start", lambda: load.batches >= 5 or load.error)
        before = load.batches
        out = os.path.join(wd, "a.backup")
        r = A.cli(a.api, "backup", "--out", out)
        during = load.batches - before
        load.stop = True
        load.join(120)
        A.check(load.error is None, "load: %s" % load.error)
        A.check(r.returncode == 0, "agentsync backup: %s%s" % (r.stdout, r.stderr))
        A.check("backup of store %s" % store_id in r.stdout, "backup said: " + r.stdout)
        A.check(not os.path.exists(out + ".partial"), "a .partial file was left")
        A.check(during >= 1, "no write completed while the backup ran: not under load")
        A.check(oct(os.stat(out).st_mode & 0o777) == "0o600", "the backup is not mode 0600")
        r = A.cli(a.api, "backup", "--out", out)
        A.check(r.returncode == 1 and "exists" in r.stderr, "a second backup over FILE: " + r.stderr)
        in_backup, nbatches = check_backup(out, store_id)
        A.check(nbatches >= 5, "only %d load batches in the backup" % nbatches)
        A.check({"b-before-%06d" % i for i in range(100)} <= in_backup,
                "b's patterns are not all in the backup")
        print("backup: %d patterns, %d whole batches; %d batches were written during it" %
              (len(in_backup), nbatches, during))

        # Writes after the backup, then a goes away.
        put(b, [A.pattern(i, "b-after") for i in range(100)])
        put(a, [A.pattern(i, "a-after") for i in range(50)])
        A.wait_for("b to hold a's writes", lambda: {"a-after-%06d" % i for i in range(50)} <=
                   ids(b))
        b_ids = ids(b)
        A.check(a.stop() == 0, "a did not stop cleanly")

        data = os.path.join(wd, "restored")
        r = A.run([os.path.join(A.BIN, "agentsync"), "restore", "--from", out, "--data", data])
        A.check(r.returncode == 0, "agentsync restore: " + r.stderr)
        A.check(store_id in r.stdout, "restore said: " + r.stdout)
        r2 = A.run([os.path.join(A.BIN, "agentsync"), "restore", "--from", out, "--data", data])
        A.check(r2.returncode == 1 and "already holds a store" in r2.stderr,
                "a restore into a directory with a store: " + r2.stderr)
        r3 = A.run([os.path.join(A.BIN, "agentsync"), "restore", "--from",
                    os.path.join(a.dir, "config.json"), "--data", os.path.join(wd, "r3")])
        A.check(r3.returncode == 1 and "not an SQLite database" in r3.stderr,
                "a restore of a file that is no backup: " + r3.stderr)

        a2 = A.Daemon(wd, "a", certs, data=data)
        a2.dir = os.path.join(wd, "a2")
        os.makedirs(a2.dir)
        a2.start()
        A.check(a2.state()["store"]["id"] == store_id, "the restored node has another store id")
        A.check(ids(a2) == in_backup, "the restored node does not hold the backup")
        a2.add_peer(b)
        # Everything b holds: the backup, b's writes, and a's own writes after the backup.
        want = in_backup | b_ids
        A.wait_for("the restored node to catch up from b", lambda: want <= ids(a2))
        time.sleep(1)
        got = ids(a2)
        A.check(want <= got, "the restored node lacks %d patterns" % len(want - got))
        lost = {i for i in b_ids if i.startswith("a-after")} - got
        A.check(not lost, "%d of a's own writes after the backup are only on b" % len(lost))
        received = a2.state()["peers"]["b"]["patternsReceived"]
        # b's 100 writes after the backup and every change of a's b holds, once; not b's
        # 100 writes before it (a's cursor of b came back with the store).
        want_n = len(b_ids) - 100
        A.check(received == want_n, "b sent the restored node %d patterns, not the %d it "
                "wrote after the backup and the %d of a's it holds (a full resync?)" %
                (received, want_n, want_n - 100))
        print("restored node: %d patterns, %d from b (100 of b's, %d of its own, %d of which "
              "the backup lacked)" % (len(got), received, received - 100,
                                      len({i for i in b_ids if not i.startswith("b-")} -
                                          in_backup)))
        print("backup: 1 passed, 0 failed")
    finally:
        A.cleanup(wd)


if __name__ == "__main__":
    main()
