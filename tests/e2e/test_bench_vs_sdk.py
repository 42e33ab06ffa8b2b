"""benchmarks/bench_vs_sdk.py runs end to end at a tiny size: every client over TLS (the fakes
serve wss:// and https:// with a throwaway CA) holds all its connections, and the exporter's
scrapes and loop probe are read. The figures themselves are the benchmark's business.

Bybit's SDK is left out here: it loses a connection now and then on a loaded machine (the
benchmark's ``held`` column shows it at scale), and this test is about the benchmark."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT

ACCOUNTS = 2
CLIENTS = ("floor", "wsfloor", "exporter")


def test_every_client_holds_every_connection_over_tls():
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_vs_sdk.py"), "--tls", "--accounts", str(ACCOUNTS)]
    command += ["--warmup", "0", "--seconds", "1", "--clients", *CLIENTS]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {
        m["client"]: m for m in re.finditer(r"^(?P<client>\S+)\s+(?P<held>\d+)\s+(?P<rss>[\d.]+)\s", run.stdout, re.M)
    }
    assert set(rows) == set(CLIENTS), run.stdout
    assert all(int(m["held"]) == ACCOUNTS for m in rows.values()), run.stdout
    assert re.search(
        r"^exporter .* p50 \d+ ms, .* loop probe max \d+ ms \(without scrapes \d+ ms\)$", run.stdout, re.M
    ), run.stdout
    assert f"Targets at N = {ACCOUNTS}:" in run.stdout and "NOTE" not in run.stdout
