"""Soak: one exporter process against one simulator process, with faults, for ``--minutes``.

What it shows: whether the exporter keeps its resources flat while its stream is closed every
few seconds and its REST calls fail now and then, the way a long night on a flaky network
would treat it. A leak that a unit test never sees (a task per reconnect that is never
awaited, a socket per failed call, a buffer per frame) shows as a slope here.

Both are real processes on 127.0.0.1, started and stopped by this script:
  - ``python -m exporter.simulator --listen 127.0.0.1:<port>`` with one account;
  - ``python -m exporter.cli --config.file <file>`` watching that account (ping every 2 s,
    poll every 5 s, a desired DERIVATIVES window in dry-run).
While they run:
  - every ``--close-every`` seconds (5) the simulator closes the account's stream (every
    third time at the TCP level, with no close frame);
  - every ``--error-every`` seconds (15) the next DCP-config poll gets a REST error (10016,
    10006 and HTTP 500 in turn; never a 403, which would ban the host for 10 minutes);
  - every ``--scrape`` seconds (5) ``/metrics`` is scraped, as Prometheus would;
  - every ``--sample`` seconds (30) a line with the exporter's RSS and open file descriptors
    (from /proc) and its asyncio task count (``bybit_dcp_exporter_tasks``), each with its
    slope per minute (least squares over the samples after ``--warmup``).
At the end one JSON line (``--json FILE`` writes it to a file too) holds every sample and
the slopes; ``tests/test_soak.py`` runs a one-minute version and judges the growth.

    python benchmarks/soak.py                       # 10 minutes
    python benchmarks/soak.py --minutes 1 --sample 10 --warmup 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET = "soak-key-0001", "soak-secret-0001"
DCP_INFO = "/v5/account/query-dcp-info"
ERRORS = (10016, 10006, 500)


@dataclass
class Sample:
    t: float  # seconds since the exporter answered its first scrape
    rss_bytes: int
    open_fds: int
    tasks: float | None
    reconnects: float | None
    polls_failed: float | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) pairs, per minute; None with fewer than two."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return None
    return 60.0 * sum((x - mx) * (y - my) for x, y in points) / var


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric_sum(text: str, name: str) -> float | None:
    """The sum of every sample of ``name`` (a counter's ``_total``) in an exposition."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env or os.environ.copy()
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def wait_for(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[1:3]} exited with {proc.returncode}")
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s")
        await asyncio.sleep(0.2)


async def control(session: aiohttp.ClientSession, base: str, name: str, **body: object) -> None:
    async with session.post(f"{base}/{name}", json=body) as resp:
        resp.raise_for_status()


def fmt_slope(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:+.2f}{unit}/min"


async def soak(opts: argparse.Namespace, workdir: Path) -> dict:
    sim_port, web_port = free_port(), free_port()
    sim_log, exp_log = workdir / "simulator.log", workdir / "exporter.log"
    sim = start(
        ["-m", "exporter.simulator", "--listen", f"127.0.0.1:{sim_port}", "--api-key", KEY, "--api-secret", SECRET],
        sim_log,
    )
    exporter: subprocess.Popen | None = None
    samples: list[Sample] = []
    faults = {"closes": 0, "aborts": 0, "rest_errors": 0}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            sim_base = f"http://127.0.0.1:{sim_port}"
            ctl = f"{sim_base}/__sim__"
            await wait_for(session, f"{ctl}/state", sim)
            config = workdir / "exporter.yml"
            account = {
                "name": "soak",
                "api_key": KEY,
                "api_secret_env": "SOAK_SECRET",
                "rest_url": sim_base,
                "ws_url": f"ws://127.0.0.1:{sim_port}/v5/private",
                "ping_interval": 2,
                "pong_timeout": 1,
                "poll_interval": 5,
                "desired_windows": {"DERIVATIVES": 10},
                "reassert": "dry-run",
            }
            config.write_text(json.dumps({"accounts": [account]}))  # JSON is YAML
            env = os.environ.copy() | {"SOAK_SECRET": SECRET}
            exporter = start(
                ["-m", "exporter.cli", "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{web_port}"],
                exp_log,
                env,
            )
            metrics_url = f"http://127.0.0.1:{web_port}/metrics"
            await wait_for(session, metrics_url, exporter)
            t0 = time.monotonic()
            duration = opts.minutes * 60.0
            next_close = opts.close_every
            next_error = opts.error_every
            next_scrape = 0.0
            next_sample = 0.0
            print(f"soak: {opts.minutes:g} min, exporter pid {exporter.pid}, simulator pid {sim.pid}", flush=True)
            print("    t  rss_MiB  fds  tasks   reconnects  rss_slope        fds_slope      tasks_slope", flush=True)
            last_text = ""
            while True:
                now = time.monotonic() - t0
                if exporter.poll() is not None:
                    raise RuntimeError(f"the exporter exited with {exporter.returncode}; see {exp_log}")
                if now >= next_scrape:
                    async with session.get(metrics_url) as resp:
                        last_text = await resp.text()
                    next_scrape += opts.scrape
                if now >= next_close:
                    if faults["closes"] % 3 == 2:
                        await control(session, ctl, "abort_connections", api_key=KEY)
                        faults["aborts"] += 1
                    else:
                        await control(session, ctl, "close_connections", api_key=KEY, code=1011, reason="soak")
                    faults["closes"] += 1
                    next_close += opts.close_every
                if now >= next_error:
                    code = ERRORS[faults["rest_errors"] % len(ERRORS)]
                    await control(session, ctl, "force_error", path=DCP_INFO, ret_code=code, count=1)
                    faults["rest_errors"] += 1
                    next_error += opts.error_every
                if now >= next_sample:
                    sample = Sample(
                        t=round(now, 1),
                        rss_bytes=rss_bytes(exporter.pid),
                        open_fds=open_fds(exporter.pid),
                        tasks=metric_sum(last_text, "bybit_dcp_exporter_tasks"),
                        reconnects=metric_sum(last_text, "bybit_dcp_ws_reconnects_total"),
                        polls_failed=metric_sum(last_text, "bybit_dcp_api_failures_total"),
                    )
                    samples.append(sample)
                    slopes = compute_slopes(samples, opts.warmup)
                    print(
                        f"{sample.t:5.0f}  {sample.rss_bytes / 2**20:7.1f}  {sample.open_fds:3d}  "
                        f"{sample.tasks if sample.tasks is not None else float('nan'):5.0f}  "
                        f"{sample.reconnects or 0:11.0f}  {fmt_slope(slopes['rss_mib'], ' MiB'):15s}  "
                        f"{fmt_slope(slopes['fds']):13s}  {fmt_slope(slopes['tasks'])}",
                        flush=True,
                    )
                    next_sample += opts.sample
                if now >= duration:
                    break
                await asyncio.sleep(max(0.0, min(next_scrape, next_close, next_error, next_sample, duration) - now))
    finally:
        if exporter is not None:
            stop(exporter)
        stop(sim)
    result = {
        "minutes": opts.minutes,
        "sample_seconds": opts.sample,
        "warmup_seconds": opts.warmup,
        "faults": faults,
        "slopes_per_minute": compute_slopes(samples, opts.warmup),
        "samples": [asdict(s) for s in samples],
    }
    return result


def compute_slopes(samples: list[Sample], warmup: float) -> dict[str, float | None]:
    kept = [s for s in samples if s.t >= warmup]
    return {
        "rss_mib": slope_per_minute([(s.t, s.rss_bytes / 2**20) for s in kept]),
        "fds": slope_per_minute([(s.t, s.open_fds) for s in kept]),
        "tasks": slope_per_minute([(s.t, s.tasks) for s in kept if s.tasks is not None]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    p.add_argument("--sample", type=float, default=30.0, help="seconds between samples (default 30)")
    p.add_argument("--warmup", type=float, default=60.0, help="samples before this many seconds are not in the slopes")
    p.add_argument("--scrape", type=float, default=5.0, help="seconds between scrapes of /metrics (default 5)")
    p.add_argument("--close-every", type=float, default=5.0, help="seconds between stream closes (default 5)")
    p.add_argument("--error-every", type=float, default=15.0, help="seconds between forced REST errors (default 15)")
    p.add_argument("--json", metavar="FILE", help="also write the result to this file")
    opts = p.parse_args(argv)
    if not 0 < opts.minutes <= 24 * 60:
        p.error("--minutes must be in (0, 1440]")
    for name in ("sample", "scrape", "close_every", "error_every"):
        if getattr(opts, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = asyncio.run(soak(opts, Path(tmp)))
    line = json.dumps(result)
    if opts.json:
        Path(opts.json).write_text(line)
    s = result["slopes_per_minute"]
    print(
        f"slopes after {opts.warmup:g} s: rss {fmt_slope(s['rss_mib'], ' MiB')}, fds {fmt_slope(s['fds'])}, "
        f"tasks {fmt_slope(s['tasks'])}; faults {result['faults']}",
        flush=True,
    )
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
