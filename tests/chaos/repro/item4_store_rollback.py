#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 13 item 4: silent loss after a store rollback under the same store id.

Two nodes that dial each other, a (n0) and b (n1):
  1. 200 writes to a; b gets them;
  2. a stopped (SIGTERM), its data directory copied (the snapshot), a
     started again;
  3. 600 more writes to a ("lost" below); b gets them, so b's cursor for a's
     store is past a's sequence in the snapshot;
  4. a stopped, its data directory replaced by the snapshot (same store id,
     sequence back at 200), a started: this is a restored backup, or a power
     loss with fsync off;
  5. 500 new writes to a, acknowledged; then wait until a reports lag 0 for
     b (bounded) and 2 s more.
Figures: how many of the 500 acknowledged writes b got (a's new writes take
sequence numbers b believes it holds already), and how many of the 600 writes
a lost with the rollback it got back from b, with the lag both report.
Target (issue): 500 of 500 and 600 of 600. Store epochs (docs/PROTOCOL.md,
"Store epochs") fixed it; the same scenario without namespaces runs in
`make test` as tests/it_daemon_sync.c `store_rollback_loses_nothing`.

Exit status: 1 when some write is missing on either side (the bug), 0 when
none is; 77 when namespaces cannot be made.
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from chaoslib.bed import Bed, arg_parser  # noqa: E402


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("--before", type=int, default=200, help="writes before the snapshot")
    ap.add_argument("--lost", type=int, default=600, help="writes after it (lost by a)")
    ap.add_argument("--after", type=int, default=500, help="writes after the restore")
    args = ap.parse_args()
    with Bed(args, n=2, dials={0: [1], 1: [0]}) as bed:
        a, b = bed.nodes
        first = bed.put(a, bed.records("before-", args.before))
        if bed.wait(lambda: bed.has(b, first[-1].id) and bed.converged(), 30) is None:
            print("the first writes did not reach b")
            return 1
        snapshot = os.path.join(bed.workdir, "snapshot")
        a.terminate()
        shutil.copytree(a.data_dir, snapshot)
        a.start()
        a.wait_listening()
        lost = bed.put(a, bed.records("lost-", args.lost))
        if bed.wait(lambda: bed.has(b, lost[-1].id) and bed.converged(), 30) is None:
            print("the writes after the snapshot did not reach b")
            return 1
        st = bed.state(a)["store"]
        seq_before, store_before = st["seq"], st["id"]
        a.terminate()
        shutil.rmtree(a.data_dir)
        shutil.copytree(snapshot, a.data_dir)
        a.start()
        a.wait_listening()
        st = bed.state(a)["store"]
        print("a restored from its snapshot: store %s (%s), sequence %d -> %d" %
              (st["id"], "same id" if st["id"] == store_before else "NEW id", seq_before,
               st["seq"]), flush=True)
        new = bed.put(a, bed.records("after-", args.after))
        bed.wait(lambda: bed.peer(a, b)["connected"] and bed.peer(a, b)["lag"] == 0, 30)
        time.sleep(2.0)
        on_b, on_a = bed.ids(b), bed.ids(a)
        got_b = sum(1 for w in new if w.id in on_b)
        got_a = sum(1 for w in lost if w.id in on_a)
        pa, pb = bed.peer(a, b), bed.peer(b, a)
        print("b got %d of the %d writes acknowledged by a after the restore "
              "(a reports lag %d for b, b reports lag %d for a)" %
              (got_b, len(new), pa["lag"], pb["lag"]))
        print("a got back %d of the %d writes it lost with the rollback (b holds all of them)" %
              (got_a, len(lost)))
        sa, sb = bed.state(a)["store"], bed.state(b)["store"]
        print("digests: a %s (%d patterns), b %s (%d patterns)" %
              (sa["digest"][:16], sa["patterns"], sb["digest"][:16], sb["patterns"]))
    bad = got_b < len(new) or got_a < len(lost)
    print("item 4: the peer got %d of %d acknowledged writes after the rollback, the node got "
          "back %d of %d%s" % (got_b, len(new), got_a, len(lost),
                              " -- reproduced" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
