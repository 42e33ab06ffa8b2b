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


# ------------------------------------------------------------------ basic auth under a flood of wrong passwords


def basic_auth_config(tmp_path, password: str) -> str:
    from tls_material import bcrypt_hash

    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_hash(password)}'\n")
    return str(path)


def basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_a_known_scraper_is_answered_while_a_flood_of_wrong_passwords_waits_for_bcrypt(tmp_path):
    """400 distinct wrong passwords: bcrypt work for them runs in a pool of its own, at most
    ``limit`` at a time (the rest answered 503 at once), so the scraper whose credentials were
    verified before gets /metrics while the wrong ones are still waiting for bcrypt."""
    import threading

    import bcrypt

    from exporter.web.config import BcryptGate, WebConfigSource

    password = "correct horse"
    release = threading.Event()

    def checkpw(given: bytes, hashed: bytes) -> bool:
        if given != password.encode():
            release.wait(30)  # the wrong ones are stuck in bcrypt until the test lets them go
        return bcrypt.checkpw(given, hashed)

    gate = BcryptGate(workers=2, limit=8, checkpw=checkpw)
    source = WebConfigSource(basic_auth_config(tmp_path, password), gate=gate)
    async with serving(source) as srv, aiohttp.ClientSession() as scraper:
        async with scraper.get(srv.url(), headers=basic("prometheus", password)) as resp:
            assert resp.status == 200  # verified once, by bcrypt

        async def wrong(i: int, http: aiohttp.ClientSession) -> int:
            async with http.get(srv.url(), headers=basic("prometheus", f"guess-{i}")) as resp:
                return resp.status

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as attacker:
            flood = [asyncio.create_task(wrong(i, attacker)) for i in range(400)]
            try:
                await eventually(lambda: gate.pending == gate.limit, what="bcrypt's pool full of wrong passwords")
                async with scraper.get(srv.url(), headers=basic("prometheus", password)) as resp:
                    assert resp.status == 200
                    assert b"bybit_dcp_exporter_build_info" in await resp.read()
                assert gate.pending == gate.limit  # answered while the wrong ones still wait
                assert sum(t.done() for t in flood) < len(flood)
            finally:
                release.set()
            statuses = await asyncio.gather(*flood)
        assert set(statuses) <= {401, 503} and statuses.count(401) >= gate.limit
        await eventually(lambda: gate.pending == 0, what="the pool to drain")


async def test_failed_passwords_never_push_the_scrapers_verified_entry_out():
    from tls_material import bcrypt_hash

    from exporter.web.config import AUTH_CACHE_SIZE, BasicAuth

    auth = BasicAuth({"prometheus": bcrypt_hash("right").encode()})
    assert await auth.verify("prometheus", "right") is True
    for i in range(AUTH_CACHE_SIZE + 44):
        assert await auth.verify("prometheus", f"wrong-{i}") is False
    assert auth.verified("prometheus", "right")  # still verified: no bcrypt for the next scrape
    assert not auth.verified("prometheus", "wrong-0")
