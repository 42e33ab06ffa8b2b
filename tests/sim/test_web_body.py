"""/metrics sent as the parts it was written in: the same bytes, its length, and the loop's turns."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
import pytest
from aiohttp import web

from exporter.metrics import Metrics
from exporter.metrics.labelled import exposition
from exporter.web.app import make_app
from exporter.web.body import CHUNK_BYTES, Parts


def steady(body: bytes) -> bytes:
    """Without the lines that move between two readings: the process collector's, and the task
    count (the scrape is a task of its own)."""
    moving = (b"process_", b"bybit_dcp_exporter_tasks ")
    return b"".join(line for line in body.splitlines(keepends=True) if not line.startswith(moving))


class _State:
    ready = True

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def account_names(self) -> list[str]:
        return self.names


@pytest.fixture
async def many_accounts():
    """An exporter's web app with enough accounts for a body of several chunks."""
    metrics = Metrics(clock=lambda: 1000.0)
    names = [f"desk-{i:03d}" for i in range(150)]
    for name in names:
        metrics.add_account(name, environment="testnet", mode="observer", desired_windows={"SPOT": 10})
        metrics.ws_rtt.labels(name).observe(0.05)
    runner = web.AppRunner(make_app(metrics, _State(names), clock=lambda: 1000.0))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/metrics", session, metrics
    await runner.cleanup()


async def test_a_plain_scrape_of_several_chunks_is_the_exposition_with_its_length(many_accounts):
    url, session, metrics = many_accounts
    async with session.get(url, headers={"Accept-Encoding": "identity"}) as resp:
        body = await resp.read()
        assert "Content-Encoding" not in resp.headers
        assert int(resp.headers["Content-Length"]) == len(body)
    assert len(body) > 3 * CHUNK_BYTES  # sent in several chunks
    assert steady(body) == steady(exposition(metrics.registry, openmetrics=False))


async def test_a_gzipped_openmetrics_scrape_is_the_exposition_with_its_length(many_accounts):
    url, session, metrics = many_accounts
    headers = {"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"}
    async with session.get(url, headers=headers) as resp:
        body = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
        assert int(resp.headers["Content-Length"]) == len(body)
    assert steady(gzip.decompress(body)) == steady(exposition(metrics.registry, openmetrics=True))


async def test_a_head_request_gets_the_length_and_no_body(many_accounts):
    url, session, metrics = many_accounts
    async with session.head(url, headers={"Accept-Encoding": "identity"}) as resp:
        assert resp.status == 200
        # The process collector's figures move between two readings, by a few digits.
        assert abs(int(resp.headers["Content-Length"]) - len(exposition(metrics.registry, openmetrics=False))) < 100
        assert await resp.read() == b""


class _Recorder:
    """A stream writer that notes each write and how many turns the loop had by then."""

    def __init__(self, ticks: list[int]) -> None:
        self.ticks = ticks
        self.writes: list[tuple[bytes, int]] = []

    async def write(self, chunk: bytes) -> None:
        self.writes.append((bytes(chunk), self.ticks[0]))


async def _written(parts: list[bytes], turn_seconds: float, content_length: int | None = None) -> _Recorder:
    ticks = [0]

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    recorder = _Recorder(ticks)
    try:
        await Parts(parts, "text/plain", turn_seconds=turn_seconds).write_with_length(recorder, content_length)  # type: ignore[arg-type]
    finally:
        task.cancel()
    return recorder


async def test_parts_are_sent_in_chunks_with_a_turn_for_the_loop_when_one_is_due():
    parts = [bytes([i % 251]) * 1000 for i in range(2000)]  # 2 MB in small parts
    eager = await _written(parts, turn_seconds=0.0)  # a turn is always due
    assert b"".join(chunk for chunk, _ in eager.writes) == b"".join(parts)
    assert all(len(chunk) <= CHUNK_BYTES + 1000 for chunk, _ in eager.writes)
    assert len(eager.writes) >= 2_000_000 // (CHUNK_BYTES + 1000)
    ticks = [tick for _, tick in eager.writes]
    assert all(later > earlier for earlier, later in zip(ticks, ticks[1:], strict=False))

    patient = await _written(parts, turn_seconds=3600.0)  # never due: the loop waits for the whole body
    assert b"".join(chunk for chunk, _ in patient.writes) == b"".join(parts)
    assert len({tick for _, tick in patient.writes}) == 1


async def test_parts_stop_at_the_content_length():
    parts = [b"abc", b"defgh", b"ij"]
    assert b"".join(c for c, _ in (await _written(parts, 0.0, content_length=6)).writes) == b"abcdef"
    assert b"".join(c for c, _ in (await _written(parts, 0.0, content_length=None)).writes) == b"abcdefghij"
    assert await Parts(parts, "text/plain").as_bytes() == b"abcdefghij"
    assert Parts(parts, "text/plain").size == 10


async def test_once_sent_the_parts_go_and_the_memory_is_handed_back(many_accounts, monkeypatch):
    from exporter.web import app as app_module

    url, session, _ = many_accounts
    handed_back: list[Parts] = []
    sent: list[Parts] = []
    made = Parts.__init__

    def keep(self: Parts, *args: object, **kwargs: object) -> None:
        made(self, *args, **kwargs)  # type: ignore[arg-type]
        sent.append(self)

    monkeypatch.setattr(Parts, "__init__", keep)
    monkeypatch.setattr(app_module, "give_back", lambda: handed_back.append(sent[-1]) or True)
    for _ in range(2):
        async with session.get(url, headers={"Accept-Encoding": "identity"}) as resp:
            assert len(await resp.read()) > 3 * CHUNK_BYTES
    assert len(sent) == 2 and handed_back == sent  # once per scrape, after its last chunk
    assert all(not payload._parts and payload.size > 3 * CHUNK_BYTES for payload in sent)
