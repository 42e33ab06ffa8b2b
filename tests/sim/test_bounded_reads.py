"""Bounded reads: a REST answer (or a Prometheus liveness answer) is read within MAX_BODY on the
wire and once inflated, and within the call's timeout; past a limit the call fails ``too_large``,
its connection dropped, and the next good answer is used.

Against :class:`hostile_http.HostileHttp` on 127.0.0.1, forwarding to the simulator until armed.
Memory is the peak resident size (``VmHWM`` of ``/proc/<pid>/status``, reset through
``clear_refs``) of this process for the client, of the exporter subprocess for the full run.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from exporter_process import ExporterProcesses
from helpers import eventually, free_port, parse_metrics, prometheus_guardian, rest_client
from hostile_http import BOMB_INFLATED, HostileHttp, bomb

from exporter.bybit.errors import HINTS, TransportError
from exporter.bybit.rest import QUERY_DCP_INFO
from exporter.metrics import Metrics
from exporter.monitor.guardian import PROMETHEUS_MAX_BODY, Guardian
from exporter.monitor.liveness import Unknown
from exporter.runtime.bounded import MAX_BODY
from exporter.simulator import Simulator
from exporter.web.liveness import LIVENESS_MAX_BODY, add_liveness_route

KEY = "bounded-key"
SECRET = "bounded-secret-0123456789"
MIB = 1 << 20
RSS_BOUND = 200 * MIB  # growth allowed during a bomb; without the bound it is the bomb's 512 MiB


def status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int | str) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


@pytest.fixture
async def sim():
    async with Simulator(rate_limit_per_second=1000) as s:
        s.add_account(KEY, SECRET)
        yield s


@pytest.fixture
async def hostile(sim):
    async with HostileHttp(sim.rest_url) as h:
        yield h


def errors(metrics: Metrics, code: str) -> float | None:
    return metrics.registry.get_sample_value(
        "bybit_dcp_api_errors_total", {"account": "acct", "endpoint": "query_dcp_info", "code": code}
    )


@pytest.mark.e2e  # inflates 512 MiB to prove the bomb is one: seconds of CPU
def test_a_bomb_is_small_on_the_wire_and_huge_inflated():
    assert len(bomb("gzip")) < MAX_BODY < BOMB_INFLATED and len(bomb("deflate")) < MAX_BODY
    for encoding, wbits in (("gzip", 16 + zlib.MAX_WBITS), ("deflate", zlib.MAX_WBITS)):
        reader = zlib.decompressobj(wbits)
        inflated = reader.decompress(bomb(encoding))
        assert reader.eof and len(inflated) == BOMB_INFLATED and not inflated.strip(b"\0")  # checksum held
    assert "too_large" in HINTS


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("gzip_bomb", "too_large"),
        ("deflate_bomb", "too_large"),
        ("endless_chunked", "too_large"),
        ("length_short", "network"),  # the 64 MiB after the 12 bytes claimed are a broken next answer
        ("length_long", "network"),  # the body ends short of its length: a broken answer
        ("trickle", "timeout"),
    ],
)
async def test_a_hostile_answer_fails_with_its_code_in_bounded_memory_and_the_next_answer_is_used(
    hostile, rest_session, kind, code
):
    metrics = Metrics()
    # The trickle is cut by a short timeout; the others must fail on their own, well within a
    # long one (the fake builds a bomb in this process, which takes seconds on a busy machine).
    timeout = 2.0 if kind == "trickle" else 30.0
    client = rest_client(rest_session, hostile.url, metrics, KEY, SECRET, timeout=timeout)
    assert "SPOT" in await client.query_dcp_info()  # a pooled connection to the fake, first
    hostile.arm(kind, QUERY_DCP_INFO)
    before = status_kib("self", "VmRSS")
    reset_peak("self")
    started = time.monotonic()
    with pytest.raises(TransportError) as exc:
        await client.query_dcp_info()
    took = time.monotonic() - started
    peak = status_kib("self", "VmHWM")
    assert (peak - before) * 1024 < RSS_BOUND, f"{kind}: peak {peak} KiB from {before} KiB"
    assert exc.value.code == code
    assert errors(metrics, code) == 1
    assert took < timeout + 3.0, f"{kind} held the call {took:.1f} s on a {timeout:g} s timeout"
    assert hostile.served == {kind: 1}
    assert "SPOT" in await client.query_dcp_info()  # the next good answer, on a fresh connection
    assert "SPOT" in await client.query_dcp_info()


@pytest.mark.e2e  # a whole exporter process, its peak memory read from /proc
@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["gzip_bomb", "deflate_bomb", "endless_chunked"])
async def test_an_exporter_against_a_hostile_rest_url_stays_small_scrapable_and_recovers(tmp_path, kind):
    sim = Simulator(time_scale=0.1, settle_delay=0.0)
    await sim.start(host="127.0.0.1", port=0)
    sim.add_account(KEY, SECRET, name="desk-a")
    procs = ExporterProcesses(tmp_path)
    port = free_port()
    try:
        async with HostileHttp(sim.rest_url) as hostile, aiohttp.ClientSession() as http:
            account = {
                "name": "desk-a",
                "api_key": KEY,
                "api_secret_env": "BOUNDED_SECRET",
                "rest_url": hostile.url,
                "ws_url": sim.ws_url,
                "poll_interval": 1,
            }
            config = tmp_path / "config.yml"
            config.write_text(yaml.safe_dump({"accounts": [account]}))
            proc = procs.start(
                "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}", BOUNDED_SECRET=SECRET
            )

            async def scrape() -> dict:
                procs.assert_running()
                async with http.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(5)) as resp:
                    assert resp.status == 200
                    return parse_metrics(await resp.text())

            async def up() -> float | None:
                try:
                    return (await scrape()).get(("bybit_dcp_up", frozenset({"account": "desk-a"}.items())))
                except aiohttp.ClientError:
                    return None

            await eventually(lambda: _is(up(), 1.0), timeout=30, interval=0.2, what="up before the bomb")
            before = status_kib(proc.pid, "VmRSS")
            reset_peak(proc.pid)
            hostile.arm(kind, QUERY_DCP_INFO, count=3)

            async def failed(code: str | None = None) -> float:
                values = await scrape()  # /metrics answers throughout
                return sum(
                    value
                    for (name, labels), value in values.items()
                    if name == "bybit_dcp_api_errors_total"
                    and dict(labels)["endpoint"] == "query_dcp_info"
                    and (code is None or dict(labels)["code"] == code)
                )

            await eventually(lambda: _at_least(failed(), 3), timeout=60, interval=0.2, what="three failed calls")
            peak = status_kib(proc.pid, "VmHWM")
            print(f"{kind}: exporter VmRSS before {before / 1024:.0f} MiB, peak during {peak / 1024:.0f} MiB")
            assert (peak - before) * 1024 < RSS_BOUND, f"peak {peak} KiB from {before} KiB"
            assert await failed("too_large") == 3
            assert hostile.served == {kind: 3}
            await eventually(lambda: _is(up(), 1.0), timeout=30, interval=0.2, what="up after the bomb")
    finally:
        procs.stop_all()
        await sim.stop()


async def _is(value, expected) -> bool:
    return (await value) == expected


async def _at_least(value, least) -> bool:
    return (await value) >= least


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate_raw"])
async def test_a_compressed_good_answer_is_inflated_and_used(hostile, rest_session, encoding):
    client = rest_client(rest_session, hostile.url, Metrics(), KEY, SECRET)
    hostile.arm(encoding, QUERY_DCP_INFO)
    assert "SPOT" in await client.query_dcp_info()
    assert hostile.served == {encoding: 1}


# ------------------------------------------------------------------ the guardian's Prometheus query


@pytest.mark.parametrize("kind", ["gzip_bomb", "deflate_bomb", "endless_chunked"])
async def test_the_prometheus_liveness_answer_is_bounded_inflated_too(session, kind):
    async with HostileHttp() as hostile:
        account = prometheus_guardian(hostile.url, "bot_alive", key=KEY, secret=SECRET)
        guardian = Guardian(account, Metrics(), session)
        hostile.arm(kind, "/api/v1/query")
        before = status_kib("self", "VmRSS")
        reset_peak("self")
        verdict = await guardian._ask_prometheus()
        peak = status_kib("self", "VmHWM")
        assert (peak - before) * 1024 < RSS_BOUND, f"{kind}: peak {peak} KiB from {before} KiB"
        assert isinstance(verdict, Unknown) and verdict.reason == "not_json"
        assert verdict.detail is not None and str(PROMETHEUS_MAX_BODY) in verdict.detail
        assert hostile.served == {kind: 1}


# ------------------------------------------------------------------ the liveness route's request body


@pytest.fixture
async def liveness_url():
    app = web.Application()
    add_liveness_route(app, lambda name: None)  # no guardian: a body that passes the size check gets 404
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/api/v1/accounts/bot/liveness"
    finally:
        await runner.cleanup()


async def test_a_liveness_post_with_a_body_past_the_limit_or_of_no_length_is_refused(liveness_url, session):
    async def chunked():
        yield b"{}"

    bomb_body = bomb("gzip")
    async with session.post(liveness_url, data=b"x" * (LIVENESS_MAX_BODY + 1)) as resp:
        assert resp.status == 413
    async with session.post(liveness_url, data=bomb_body, headers={"Content-Encoding": "gzip"}) as resp:
        assert resp.status == 413
    async with session.post(liveness_url, data=chunked()) as resp:
        assert resp.status == 413
    async with session.post(liveness_url, data=b"{}") as resp:
        assert resp.status == 404  # small: on to the guardian lookup
    async with session.post(liveness_url) as resp:
        assert resp.status == 404
