#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""agentsync fault-injection test: several agentsyncd in network namespaces,
concurrent writers, kills, stops, loss, throttling and partitions, then a heal
and a check of every acknowledged write against every node's listing.

    chaos.py --short                 # the run of `make test` (ctest chaos_short)
    chaos.py --duration 1500 --seed 7  # what `make chaos` runs

Exit status: 0 pass, 1 a finding (or an error), 77 skipped (no namespaces).
See tests/chaos/README.md.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaoslib import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.environ.get("AGS_BIN_DIR", "build/bin"),
                    help="where agentsyncd and agentsync are (default $AGS_BIN_DIR or build/bin)")
    ap.add_argument("--duration", type=float, default=60, help="seconds of faults (default 60)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: a new one)")
    ap.add_argument("--nodes", type=int, default=5, help="daemons (default 5, at least 3)")
    ap.add_argument("--writers", type=int, default=5, help="writer threads (default 5)")
    ap.add_argument("--idle-timeout", type=int, default=3000,
                    help="the daemons' idleTimeout in ms (default 3000)")
    ap.add_argument("--converge-timeout", type=float, default=120,
                    help="seconds to wait for convergence after the heal (default 120)")
    ap.add_argument("--max-ids", type=int, default=200000,
                    help="ids created at most; then creates become updates (default 200000)")
    ap.add_argument("--self-test", action="store_true",
                    help="after the check, delete a row from one store behind the node's back "
                         "and require the checker to report exactly that loss")
    ap.add_argument("--short", action="store_true",
                    help="the make test run: 4 nodes, 3 writers, 20 s of faults, --self-test")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    a = ap.parse_args()
    if a.short:
        a.nodes, a.writers, a.duration, a.self_test = 4, 3, 20, True
        a.converge_timeout = min(a.converge_timeout, 25)
    if a.nodes < 3:
        ap.error("--nodes must be at least 3")
    a.bin_dir = os.path.abspath(a.bin_dir)
    run.install_signal_handlers()
    return run.Run(a).main()


if __name__ == "__main__":
    sys.exit(main())
