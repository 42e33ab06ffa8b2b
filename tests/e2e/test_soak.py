"""benchmarks/soak.py for one minute: a real exporter process against a real simulator process,
its stream closed every 5 s (every third time at the TCP level) and a REST error every 15 s,
scraped every 5 s and sampled every 10 s.

The bounds, on the slopes (least squares, per minute) of the samples after the first 10 s:
- asyncio tasks: at most +1 per minute, and never more than 3 above the fewest seen. A task
  left behind by each reconnect would be +12 per minute;
- open file descriptors: at most +1 per minute, and never more than 3 above the first sample.
  A socket left open by each reconnect would be +12 per minute;
- resident memory: at most +2 MiB per minute. The 10-minute run in docs/performance.md
  grows by +0.06 MiB per minute (about 7 KiB per reconnect); a leak of 170 KiB per
  reconnect would pass 2.
The run must also have done what it says: at least 8 reconnects and 3 failed polls.
"""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT

MAX_TASK_SLOPE = 1.0
MAX_FD_SLOPE = 1.0
MAX_RSS_SLOPE_MIB = 2.0


def test_one_minute_of_closes_and_rest_errors_leaves_tasks_fds_and_memory_flat(tmp_path):
    out = tmp_path / "soak.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--minutes", "1", "--sample", "10"]
    command += ["--warmup", "10", "--json", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    samples, slopes = result["samples"], result["slopes_per_minute"]
    assert len(samples) >= 6, run.stdout
    assert samples[-1]["reconnects"] >= 8 and samples[-1]["polls_failed"] >= 3, run.stdout

    tasks = [s["tasks"] for s in samples]
    assert None not in tasks, "bybit_dcp_exporter_tasks missing from the scrape"
    assert slopes["tasks"] <= MAX_TASK_SLOPE and max(tasks) - min(tasks) <= 3, run.stdout
    fds = [s["open_fds"] for s in samples]
    assert slopes["fds"] <= MAX_FD_SLOPE and max(fds) - fds[0] <= 3, run.stdout
    assert slopes["rss_mib"] <= MAX_RSS_SLOPE_MIB, run.stdout
