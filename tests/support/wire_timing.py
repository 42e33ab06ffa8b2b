"""Does the exporter measure Bybit or itself? A fleet timed against an independent client.

The fake Bybit (the simulator) runs in a process of its own, with a fixed pong delay for every
account. The exporter (a :class:`Fleet` and its web app) runs in this process. A probe runs in a
third process: it holds one more account's private stream and pings it, reads the same REST
endpoint the fleet polls over a keep-alive connection, and scrapes the exporter's /metrics
like Prometheus. Over one window the exporter's mean RTT and REST duration are compared with
what the probe saw: the probe's process does nothing else, so its figures are the wire's and
the fake's, not a busy client's.

Used by ``tests/sim/test_wire_timing.py`` (N = 300) and ``benchmarks/bench_wire_timing.py``
(N = 1,000). The per-host connection budget (Bybit: 500 new websocket connections per
5 minutes) is lifted for the fleet: it would only make the start wait. ``python
tests/support/wire_timing.py probe SPEC`` is the probe's own entry point.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from helpers import free_port, stop_process

from exporter.bybit.pacing import ConnectionBudget, Pacing
from exporter.bybit.signing import sign_rest, ws_auth_args
from exporter.config import AccountConfig, Config
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.secrets import Secret
from exporter.web.app import make_app

ROOT = Path(__file__).resolve().parents[2]
DCP_INFO = "/v5/account/query-dcp-info"
PROBE_KEY = "probe-key"
REST_SAMPLES = {
    "bybit_dcp_api_request_duration_seconds_sum": "rest_sum",
    "bybit_dcp_api_request_duration_seconds_count": "rest_count",
}


@dataclass(frozen=True)
class Setup:
    accounts: int
    pong_delay: float = 0.05
    ping_interval: float = 20.0
    poll_interval: float = 30.0
    scrape_interval: float = 10.0
    window: float = 60.0  # seconds measured, after every stream is up and has pinged once
    probe_interval: float = 0.25  # the probe's ping and REST call period


@dataclass
class Figures:
    accounts: int
    pong_delay_ms: float
    exporter_rtt_ms: float
    probe_rtt_ms: float
    exporter_rest_ms: float
    probe_rest_ms: float
    pool_wait_ms: float | None
    connections_opened: float | None
    loop_lag_mean_ms: float | None
    loop_lag_over_10ms: float | None  # share of loop-lag samples above 10 ms
    pings: float
    polls: float
    scrapes: int
    scrape_max_ms: float
    connected_seconds: float

    def lines(self) -> list[str]:
        def ms(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f} ms"

        return [
            f"accounts                     {self.accounts}",
            f"pong delay injected          {self.pong_delay_ms:.1f} ms",
            f"all streams up in            {self.connected_seconds:.1f} s",
            f"ping RTT   exporter (mean)   {ms(self.exporter_rtt_ms)} over {self.pings:.0f} pongs",
            f"           probe (mean)      {ms(self.probe_rtt_ms)}",
            f"           difference        {ms(self.exporter_rtt_ms - self.probe_rtt_ms)}",
            f"REST poll  exporter (mean)   {ms(self.exporter_rest_ms)} over {self.polls:.0f} polls",
            f"           probe (mean)      {ms(self.probe_rest_ms)}",
            f"           difference        {ms(self.exporter_rest_ms - self.probe_rest_ms)}",
            f"pool wait (mean)             {ms(self.pool_wait_ms)}",
            f"TCP connections opened       {'n/a' if self.connections_opened is None else f'{self.connections_opened:.0f}'}",
            f"event-loop lag (mean)        {ms(self.loop_lag_mean_ms)}"
            + ("" if self.loop_lag_over_10ms is None else f", {100 * self.loop_lag_over_10ms:.1f} % above 10 ms"),
            f"scrapes                      {self.scrapes}, slowest {self.scrape_max_ms:.0f} ms",
        ]


# ---------------------------------------------------------------- the fake, in its own process


def start_simulator(keys: list[tuple[str, str]], workdir: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    spec = workdir / "accounts.yml"
    spec.write_text(json.dumps([{"api_key": k, "api_secret": s} for k, s in keys]))  # JSON is YAML
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0", "--accounts", str(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    urls = dict(re.findall(r"(REST|websocket|control) (\S+)", line))
    if len(urls) != 3:
        stop_process(proc, timeout=20)
        raise RuntimeError(f"the simulator did not start: {line!r}")
    return proc, urls


def set_pong_delay(control_url: str, keys: list[str], seconds: float) -> None:
    for key in keys:
        body = json.dumps({"api_key": key, "seconds": seconds}).encode()
        request = urllib.request.Request(f"{control_url}/set_pong_latency", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


# ---------------------------------------------------------------- the exporter's own figures


def totals(metrics: Metrics) -> dict[str, float]:
    """Sums over every account of the samples compared: histogram sums and counts, counters."""
    wanted = {
        "bybit_dcp_ws_ping_rtt_seconds_sum": "rtt_sum",
        "bybit_dcp_ws_ping_rtt_seconds_count": "rtt_count",
        "bybit_dcp_api_connection_wait_seconds_sum": "wait_sum",
        "bybit_dcp_api_connection_wait_seconds_count": "wait_count",
        "bybit_dcp_api_connections_opened_total": "opened",
        "bybit_dcp_exporter_event_loop_lag_seconds_sum": "lag_sum",
        "bybit_dcp_exporter_event_loop_lag_seconds_count": "lag_count",
    }
    out: dict[str, float] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name in wanted:
                out[wanted[s.name]] = out.get(wanted[s.name], 0.0) + s.value
            elif s.name in REST_SAMPLES and s.labels.get("endpoint") == "query_dcp_info":
                out[REST_SAMPLES[s.name]] = out.get(REST_SAMPLES[s.name], 0.0) + s.value
            elif s.name == "bybit_dcp_exporter_event_loop_lag_seconds_bucket" and s.labels.get("le") == "0.01":
                out["lag_le_10ms"] = s.value
    return out


def delta_mean(before: dict[str, float], after: dict[str, float], name: str) -> float | None:
    count = after.get(f"{name}_count", 0.0) - before.get(f"{name}_count", 0.0)
    if f"{name}_sum" not in after or count <= 0:
        return None
    return (after[f"{name}_sum"] - before.get(f"{name}_sum", 0.0)) / count


# ---------------------------------------------------------------- one run


async def measure(setup: Setup) -> Figures:
    keys = [(f"wire-{i:04d}", f"wire-secret-{i:04d}") for i in range(setup.accounts)]
    probe_secret = "probe-secret-0123456789"
    with tempfile.TemporaryDirectory() as tmp:
        sim, urls = start_simulator([*keys, (PROBE_KEY, probe_secret)], Path(tmp))
        try:
            set_pong_delay(urls["control"], [k for k, _ in keys] + [PROBE_KEY], setup.pong_delay)
            configs = [
                AccountConfig(
                    name=f"acct-{i:04d}",
                    api_key=key,
                    api_secret=Secret(secret),
                    environment="simulator",
                    rest_url=urls["REST"],
                    ws_url=urls["websocket"],
                    ping_interval=setup.ping_interval,
                    pong_timeout=setup.ping_interval / 2,
                    poll_interval=setup.poll_interval,
                )
                for i, (key, secret) in enumerate(keys)
            ]
            lifted = setup.accounts * 10 + 2
            pacing = Pacing(budget=ConnectionBudget(limit=lifted, burst=lifted - 1))
            metrics = Metrics()
            fleet = Fleet(Config(accounts=configs), metrics, pacing=pacing)
            runner = web.AppRunner(make_app(metrics, fleet), access_log=None)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            started = time.monotonic()
            await fleet.start()
            try:
                while not all(s.stream.connected for s in fleet.supervisors.values()):
                    if time.monotonic() - started > 120:
                        raise RuntimeError("not every stream connected within 120 s")
                    await asyncio.sleep(0.1)
                connected = time.monotonic() - started
                await asyncio.sleep(setup.ping_interval + setup.pong_delay)  # every account pinged once
                probe_spec = {
                    "ws_url": urls["websocket"],
                    "rest_url": urls["REST"],
                    "key": PROBE_KEY,
                    "secret": probe_secret,
                    "metrics_url": f"http://127.0.0.1:{port}/metrics",
                    "seconds": setup.window,
                    "interval": setup.probe_interval,
                    "scrape_interval": setup.scrape_interval,
                }
                probe = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "probe",
                    json.dumps(probe_spec),
                    cwd=ROOT,
                    stdout=asyncio.subprocess.PIPE,
                )
                assert probe.stdout is not None
                if (await probe.stdout.readline()).strip() != b"ready":
                    raise RuntimeError("the probe did not connect")
                before = totals(metrics)
                result = json.loads(await probe.stdout.readline())
                after = totals(metrics)
                await probe.wait()
            finally:
                await fleet.stop()
                await runner.cleanup()
        finally:
            stop_process(sim, timeout=20)

    def diff(name: str) -> float | None:
        return after[name] - before.get(name, 0.0) if name in after else None

    lag_count = diff("lag_count")
    lag_le = diff("lag_le_10ms")
    wait = delta_mean(before, after, "wait")
    lag = delta_mean(before, after, "lag")
    return Figures(
        accounts=setup.accounts,
        pong_delay_ms=1000 * setup.pong_delay,
        exporter_rtt_ms=1000 * (delta_mean(before, after, "rtt") or float("nan")),
        probe_rtt_ms=1000 * result["rtt"],
        exporter_rest_ms=1000 * (delta_mean(before, after, "rest") or float("nan")),
        probe_rest_ms=1000 * result["rest"],
        pool_wait_ms=None if wait is None else 1000 * wait,
        connections_opened=diff("opened"),
        loop_lag_mean_ms=None if lag is None else 1000 * lag,
        loop_lag_over_10ms=None if not lag_count or lag_le is None else 1 - lag_le / lag_count,
        pings=diff("rtt_count") or 0.0,
        polls=diff("rest_count") or 0.0,
        scrapes=result["scrapes"],
        scrape_max_ms=1000 * result["scrape_max"],
        connected_seconds=connected,
    )


# ---------------------------------------------------------------- the probe (its own process)


async def probe(spec: dict) -> dict:
    """One account's stream and REST calls, timed by a process that does nothing else; and scrapes."""
    key, secret, interval = spec["key"], Secret(spec["secret"]), spec["interval"]
    rtts: list[float] = []
    rests: list[float] = []
    scrapes: list[float] = []
    rest_pool = aiohttp.TCPConnector(limit=1, keepalive_timeout=600)  # one connection, reused by every call
    async with (
        aiohttp.ClientSession(connector=rest_pool) as session,
        aiohttp.ClientSession() as other,
        other.ws_connect(spec["ws_url"], autoping=False) as ws,
    ):
        expires = int((time.time() + 10) * 1000)
        await ws.send_json({"req_id": "auth", "op": "auth", "args": ws_auth_args(key, secret, expires)})
        await ws.receive(timeout=10)
        await ws.send_json({"req_id": "sub", "op": "subscribe", "args": ["order"]})
        await ws.receive(timeout=10)

        async def rest_call() -> float:
            headers = sign_rest(key, secret, int(time.time() * 1000), "").as_dict()
            t0 = time.perf_counter()
            async with session.get(spec["rest_url"] + DCP_INFO, headers=headers) as response:
                await response.read()
            return time.perf_counter() - t0

        await rest_call()  # opens the connection the timed calls reuse
        print("ready", flush=True)
        end = time.perf_counter() + spec["seconds"]

        async def pause(seconds: float) -> None:  # never past the end of the window
            await asyncio.sleep(max(0.0, min(seconds, end - time.perf_counter())))

        async def pings() -> None:
            n = 0
            while time.perf_counter() < end:
                n += 1
                t0 = time.perf_counter()
                await ws.send_str(json.dumps({"req_id": f"p{n}", "op": "ping"}))
                while (await ws.receive(timeout=10)).json().get("req_id") != f"p{n}":
                    pass
                rtts.append(time.perf_counter() - t0)
                await pause(interval - rtts[-1])

        async def rest() -> None:
            while time.perf_counter() < end:
                rests.append(await rest_call())
                await pause(interval)

        async def scrape() -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with other.get(spec["metrics_url"], headers={"Accept-Encoding": "gzip"}) as response:
                    await response.read()
                scrapes.append(time.perf_counter() - t0)
                await pause(spec["scrape_interval"] - scrapes[-1])

        await asyncio.gather(pings(), rest(), scrape())
    return {
        "rtt": statistics.fmean(rtts),
        "rest": statistics.fmean(rests),
        "scrapes": len(scrapes),
        "scrape_max": max(scrapes),
    }


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    print(json.dumps(asyncio.run(probe(json.loads(sys.argv[2])))), flush=True)
