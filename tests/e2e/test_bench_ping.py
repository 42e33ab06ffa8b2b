"""benchmarks/bench_ping.py runs end to end at a tiny size: both clients connect and ping, the
stream's pongs are counted, and the ratio is printed. The figures are the benchmark's business."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT


def test_both_clients_ping_and_the_ratio_is_printed():
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_ping.py"), "--streams", "3"]
    command += ["--interval", "0.4", "--pongs", "6", "--rounds", "1"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = dict(re.findall(r"^1 +(wsfloor|stream) +([\d.]+) .* +(?:nan|\d+)$", run.stdout, re.M))
    assert set(rows) == {"wsfloor", "stream"}, run.stdout
    assert all(float(per_cycle) > 0 for per_cycle in rows.values()), run.stdout
    pongs = re.search(r"^1 +stream .* (\d+)$", run.stdout, re.M)
    assert pongs and int(pongs.group(1)) > 0, run.stdout
    assert re.search(r"^ratio stream / wsfloor: [\d.]+", run.stdout, re.M), run.stdout
