"""The web server defends itself: idle and slow peers are cut off, a connection cap that a
scrape still gets through, and malformed requests logged once per kind without tracebacks."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from helpers import eventually
from web_server import serving

GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it stays open."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout():
    async with serving(header_timeout=0.3) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await closed_by_server(reader, 5) == b""
        writer.close()
        await eventually(lambda: srv.guard.open_connections == 0, what="the guard to forget the connection")


async def test_a_request_head_that_never_ends_is_cut_off():
    async with serving(header_timeout=0.5) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no blank line: the head never ends

        async def drip():
            for _ in range(20):
                writer.write(b"X-Slow: 1\r\n")
                await asyncio.sleep(0.1)

        dripping = asyncio.create_task(drip())
        assert await closed_by_server(reader, 5) == b""
        dripping.cancel()
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout():
    async with serving(keepalive_timeout=0.3, header_timeout=30) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(GET)
        answer = await closed_by_server(reader, 5)  # the answer, then the close of the idle connection
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n")
        writer.close()


async def test_at_the_connection_cap_idle_peers_make_room_and_the_scrape_gets_through(session):
    async with serving(max_connections=5, header_timeout=30) as srv:
        idle = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(8)]
        await eventually(lambda: srv.guard.open_connections == 5, what="the cap to hold at 5")
        async with session.get(srv.url("/metrics")) as resp:
            assert resp.status == 200
            assert "bybit_dcp_exporter_shard_info" in await resp.text()
        assert srv.guard.open_connections <= 5
        # The oldest idle peers were closed to make room: their reads end.
        assert await closed_by_server(idle[0][0], 5) == b""
        for _, writer in idle:
            writer.close()


async def test_malformed_requests_are_logged_once_per_kind_without_tracebacks(caplog):
    caplog.set_level(logging.DEBUG, logger="exporter.web.guard")
    async with serving() as srv:
        for request in (b"NOT HTTP AT ALL\r\n\r\n",) * 3 + (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",) * 2:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(request)
            answer = await closed_by_server(reader, 5)
            assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer
            writer.close()
        async with aiohttp.ClientSession() as http, http.get(srv.url("/healthz")) as resp:
            assert resp.status == 200  # the server is fine afterwards
    records = [r for r in caplog.records if r.name == "exporter.web.guard"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(records) == 5
    assert len(warnings) == len({r.kind for r in records}) >= 1  # one warning per kind, the rest at debug
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in records)
