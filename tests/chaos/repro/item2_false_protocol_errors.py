#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 13 item 2: false protocol errors after a refused duplicate connection.

The refusals come from item 1's sequence (chaoslib/stale_link.py): only b
(n1) dials a (n0); after SIGSTOPs and a short partition a still holds b's
dead connection and refuses each of b's new ones as "duplicate connection"
right after their HELLO. Here b also holds a backlog for a (written to b
behind the partition), so each new connection of b carries batches after
its HELLO (in 0-RTT). a goes on parsing the refused connection's bytes, from
the middle of a frame, and logs them as protocol errors:
    closing connection with ?: unknown frame type 0xd5 (UNKNOWN_FRAME)
    closing connection with ?: flags must be 0 in a PULL_DONE frame, got 0x4f
    closing connection with ?: the frame reader failed earlier (protocol error)
A refused connection's data should be dropped, not parsed: the target is 0
such lines (a refusal itself, "closing connection with ?: duplicate
connection", is not counted).

Prints the refusals and false protocol-error lines after each heal and in
all. Exit status: 1 when any false protocol-error line was logged (the bug);
0 when duplicates were refused and none was; 2 when no duplicate was
refused at all, so item 2 was not exercised (once item 1 is fixed, this
sequence no longer makes refusals: the regression test then needs another
way to have a duplicate refused); 77 when namespaces cannot be made.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from chaoslib.bed import Bed, arg_parser  # noqa: E402
from chaoslib.stale_link import Load, round_until_heal  # noqa: E402

# The same pattern as the chaos run's figure (chaoslib/run.py).
FALSE_RE = re.compile(r"closing connection with \?: (?!duplicate connection)|"
                      r"flags must be 0|unknown frame type|the frame reader failed earlier")


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backlog", type=int, default=2000,
                    help="writes to b behind the partition (default 2000)")
    ap.add_argument("--idle-timeout", type=int, default=2000, help="ms (default 2000)")
    args = ap.parse_args()
    idle = args.idle_timeout / 1000.0
    total_dup = total_false = 0
    examples = {}  # one line of each kind of message
    with Bed(args, n=2, dials={1: [0]}, idle_timeout_ms=args.idle_timeout) as bed:
        a, b = bed.nodes
        with Load(bed, a):
            for r in range(1, args.rounds + 1):
                if bed.wait(lambda: bed.peer(b, a)["connected"] and
                            bed.peer(a, b)["connected"], 60) is None:
                    print("round %d: b and a never connected" % r)
                    return 1
                time.sleep(1.0)
                backlog = bed.records("r%d-" % r, args.backlog)
                _, _, heal = round_until_heal(bed, a, b, idle,
                                              behind_partition=lambda: bed.put(b, backlog))
                if bed.wait(lambda: bed.has(a, backlog[-1].id), 120) is None:
                    print("round %d: b's backlog did not reach a within 120 s" % r)
                    return 1
                dup = false = 0
                for line in bed.log_lines(a, heal):
                    if "duplicate connection" in line:
                        dup += 1
                    if FALSE_RE.search(line):
                        false += 1
                        kind = re.sub(r"0x[0-9a-f]+", "0x..", line.split(" ", 1)[1])
                        if len(examples) < 6:
                            examples.setdefault(kind, line)
                total_dup += dup
                total_false += false
                print("round %d: after the heal a refused b as a duplicate %d times and logged "
                      "%d false protocol-error lines" % (r, dup, false), flush=True)
    for e in examples.values():
        print("  e.g. " + e)
    print("item 2: %d false protocol-error lines after %d refused duplicates in %d rounds%s" %
          (total_false, total_dup, args.rounds, " -- reproduced" if total_false else ""))
    if total_false:
        return 1
    if not total_dup:
        print("item 2: not exercised: no duplicate connection was refused")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
