#!/usr/bin/env python3
"""Why the password checks run in an nginx of their own (docs/auth.md#why-this-design).

    python bench/verifier_placement.py [--seconds 30] [--rounds 2]

The flood of bench/run.py (a valid user under wrk, /health probed every 20 ms, wrong
passwords from another address) against the stack twice: with the verifier's server inside
the nginx that serves MLflow, and in its own nginx (nginx-verifier.conf, the stack's design).
Long phases, because a one-address flood costs one bcrypt check a second and its effect is
rare per second. Prints one line per placement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="per phase (default 30)")
    parser.add_argument("--rounds", type=int, default=2, help="alone/flood pairs (default 2)")
    args = parser.parse_args()
    with ExitStack() as exits:
        work = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="mlflow-bench-")))
        stack_file = work / "stack.yaml"
        stack_file.write_text("auth:\n  bcrypt_cost: 12\n")
        bench = run.Bench(work, stack_file, exits)
        direct = bench.mlflow("direct", [])
        for placement, inside in (("inside the serving nginx", True), ("own nginx", False)):
            name = "inside" if inside else "own"
            url = bench.nginx(name, direct, None, verifier_inside=inside)
            print(f"{placement} ...", file=sys.stderr)
            f = run.flood(url, bench.auth, args.seconds, args.rounds, work)
            kept = run.paired(f["rounds_valid_rps_during_flood"], f["rounds_valid_rps_alone"])
            print(
                f"verifier {placement}: valid user keeps {kept:.0%} of its throughput during "
                f"the flood; /health over 100 ms: {f['health_over_100ms_during_flood']} of "
                f"{f['health_probes']} probes (alone: {f['health_over_100ms_alone']}), "
                f"p99 {f['health_p99_ms_during_flood']:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
