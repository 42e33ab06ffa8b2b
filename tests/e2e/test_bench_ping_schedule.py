"""benchmarks/bench_ping_schedule.py runs end to end at a tiny size: both clients connect and ping
on every schedule, and the table has a figure for each. The figures are the benchmark's business."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT


def test_every_client_pings_on_every_schedule():
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_ping_schedule.py"), "--accounts", "2"]
    command += ["--interval", "0.4", "--seconds", "0.5"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = re.findall(r"^(together|1s|250ms|random) +(bare|stream) +(\d+) +([\d.]+)$", run.stdout, re.M)
    assert {(schedule, client) for schedule, client, _, _ in rows} == {
        (schedule, client) for schedule in ("together", "1s", "250ms", "random") for client in ("bare", "stream")
    }, run.stdout
    assert all(int(per_cycle) > 0 for _, _, per_cycle, _ in rows), run.stdout
