"""The REST pool over loopback: reuse, limits, the peer letting go, timeouts, bounds and TLS.

A scripted HTTP/1.1 server (asyncio streams, real sockets) answers each request as the test
says and records which connection carried it, so each test sees what went over the wire.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from tls_material import make_pki
from virtual_clock import VirtualClock

from exporter.http.pool import Pool, RequestTiming
from exporter.http.protocol import ProtocolError
from exporter.runtime.bounded import TooLarge


def ok(body: bytes = b'{"retCode":0}', extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@dataclass
class Seen:
    connection: int
    method: str
    target: str
    head: str
    body: bytes


Script = Callable[[Seen, asyncio.StreamWriter], Awaitable[bool]]  # False: close the connection


@dataclass
class Server:
    """The scripted peer: ``script`` answers each request (default: 200 and keep the connection)."""

    script: Script | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    closed_by_client: int = 0
    url: str = ""
    _server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                except asyncio.IncompleteReadError:
                    self.closed_by_client += 1
                    return
                method, target, _ = head.split(" ", 2)
                length = next(
                    (
                        int(line.split(":")[1])
                        for line in head.split("\r\n")
                        if line.lower().startswith("content-length")
                    ),
                    0,
                )
                seen = Seen(number, method, target, head, await reader.readexactly(length))
                self.seen.append(seen)
                if self.script is None:
                    writer.write(ok())
                elif not await self.script(seen, writer):
                    return
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@pytest.fixture
async def server():
    peer = await Server().start()
    try:
        yield peer
    finally:
        await peer.stop()


class Recorder:
    """A PoolObserver that keeps what it heard."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.opened = 0

    def connection_wait(self, seconds: float) -> None:
        self.waits.append(seconds)

    def connection_opened(self) -> None:
        self.opened += 1


async def get(pool: Pool, url: str, *, method: str = "GET", body: bytes | None = None, timeout: float = 5.0):
    return await pool.send(method, url, {"X-Test": "1"}, body, timeout)


async def test_calls_share_one_kept_connection_and_send_the_target_as_given(server):
    observer = Recorder()
    pool = Pool(observer=observer, headers={"User-Agent": "probe"})
    try:
        for _ in range(3):
            reply = await get(pool, server.url + "/v5/x?a=1&b=%2F")
            assert (reply.status, reply.body) == (200, b'{"retCode":0}')
    finally:
        await pool.close()
    assert [s.connection for s in server.seen] == [1, 1, 1]
    assert {s.target for s in server.seen} == {"/v5/x?a=1&b=%2F"}
    assert "User-Agent: probe\r\n" in server.seen[0].head and "X-Test: 1\r\n" in server.seen[0].head
    assert observer.opened == 1 and observer.waits == [0.0, 0.0, 0.0]


async def test_a_post_sends_its_body_with_its_length(server):
    pool = Pool()
    try:
        await get(pool, server.url + "/v5/set", method="POST", body=b'{"timeWindow":10}')
    finally:
        await pool.close()
    assert server.seen[0].method == "POST" and server.seen[0].body == b'{"timeWindow":10}'


async def test_the_timing_notes_when_the_call_had_its_connection(server):
    clock = VirtualClock()
    clock.jump(42.0)
    pool = Pool(clock=clock)
    timing = RequestTiming()
    try:
        await pool.send("GET", server.url + "/x", {}, None, 5.0, None, timing)
    finally:
        await pool.close()
    assert timing.connected_at == 42.0


async def test_at_its_limit_a_call_waits_for_a_connection_and_the_wait_is_told(server):
    clock = VirtualClock()
    release = asyncio.Event()

    async def hold_the_first(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if len(server.seen) == 1:
            await release.wait()
        writer.write(ok())
        return True

    server.script = hold_the_first
    observer = Recorder()
    pool = Pool(clock=clock, observer=observer, limit=1)
    try:
        first = asyncio.create_task(get(pool, server.url + "/1"))
        while not server.seen:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(get(pool, server.url + "/2"))
        await asyncio.sleep(0.05)
        assert not second.done()  # no room: it waits
        clock.jump(2.5)
        release.set()
        assert (await first).status == 200 and (await second).status == 200
    finally:
        await pool.close()
    assert server.connections == 1 and [s.connection for s in server.seen] == [1, 1]
    assert observer.waits == [0.0, 2.5] and observer.opened == 1


async def test_a_connection_idle_past_the_keepalive_is_let_go_and_a_new_one_opened(server):
    clock = VirtualClock()
    pool = Pool(clock=clock, keepalive=60.0)
    try:
        await get(pool, server.url + "/1")
        clock.jump(59.0)
        await get(pool, server.url + "/2")
        clock.jump(60.0)
        await get(pool, server.url + "/3")
    finally:
        await pool.close()
    assert [s.connection for s in server.seen] == [1, 1, 2]


async def test_connections_a_burst_opened_are_let_go_once_idle_past_the_keepalive(server):
    clock = VirtualClock()
    release = asyncio.Event()

    async def held(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        await release.wait()
        writer.write(ok())
        return True

    server.script = held
    pool = Pool(clock=clock, keepalive=60.0)
    try:
        burst = [asyncio.create_task(get(pool, server.url + f"/{i}")) for i in range(3)]
        while len(server.seen) < 3:
            await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*burst)
        assert pool.open_connections == 3
        for _ in range(7):  # one call every 10 s: each takes the newest connection
            clock.jump(10.0)
            await get(pool, server.url + "/again")
        assert pool.open_connections == 1
    finally:
        await pool.close()
    assert server.connections == 3


async def test_a_connection_the_peer_closed_while_idle_is_not_used_again(server):
    async def answer_and_close(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok())
        await writer.drain()
        return False  # closes without saying so in the answer

    server.script = answer_and_close
    observer = Recorder()
    pool = Pool(observer=observer)
    try:
        await get(pool, server.url + "/1")
        while pool.open_connections:
            await asyncio.sleep(0.01)  # the close reaches the pool, which lets the connection go
        await get(pool, server.url + "/2")
    finally:
        await pool.close()
    assert [s.connection for s in server.seen] == [1, 2] and observer.opened == 2


@pytest.mark.parametrize("method, resent", [("GET", True), ("POST", False)])
async def test_a_get_is_sent_again_once_when_the_peer_let_its_connection_go_a_post_never(server, method, resent):
    async def drop_the_second(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if len(server.seen) == 2:
            return False  # read, then closed unanswered: the peer let the idle connection go
        writer.write(ok())
        return True

    server.script = drop_the_second
    pool = Pool()
    try:
        await get(pool, server.url + "/1", method=method, body=b"{}" if method == "POST" else None)
        if resent:
            reply = await get(pool, server.url + "/2")
            assert reply.status == 200
        else:
            with pytest.raises(ProtocolError):
                await get(pool, server.url + "/2", method=method, body=b"{}")
    finally:
        await pool.close()
    assert [s.connection for s in server.seen] == ([1, 1, 2] if resent else [1, 1])


async def test_a_new_connection_closed_unanswered_is_not_sent_again(server):
    async def never_answer(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        return False

    server.script = never_answer
    pool = Pool()
    try:
        with pytest.raises(ProtocolError):
            await get(pool, server.url + "/1")
    finally:
        await pool.close()
    assert len(server.seen) == 1


async def test_the_timeout_covers_the_answer_and_the_connection_is_dropped(server):
    clock = VirtualClock()

    async def silent(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(3600)
        return True

    server.script = silent
    pool = Pool(clock=clock)
    try:
        call = asyncio.create_task(get(pool, server.url + "/1", timeout=10.0))
        while not server.seen:
            await asyncio.sleep(0.01)
        await clock.advance(9.0)
        assert not call.done()
        await clock.advance(1.0)
        with pytest.raises(TimeoutError):
            await call
        assert pool.open_connections == 0
    finally:
        await pool.close()


async def test_a_peer_that_never_stops_talking_is_cut_at_the_limit_and_its_connection_dropped(server):
    async def endless(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(10_000):  # bounded: far past the limit
                writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        return False

    server.script = endless
    pool = Pool(max_body=1 << 20)
    try:
        with pytest.raises(TooLarge):
            await get(pool, server.url + "/1")
        assert pool.open_connections == 0
        server.script = None
        assert (await get(pool, server.url + "/2")).status == 200  # on a fresh connection
    finally:
        await pool.close()
    assert [s.connection for s in server.seen] == [1, 2]


async def test_a_redirect_is_handed_back_not_followed(server):
    async def redirect(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n")
        return True

    server.script = redirect
    pool = Pool()
    try:
        reply = await get(pool, server.url + "/1")
    finally:
        await pool.close()
    assert reply.status == 302 and reply.headers["location"] == "http://elsewhere.invalid/"
    assert len(server.seen) == 1


async def test_stray_bytes_from_an_idle_connection_end_it(server):
    async def answer_twice(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok())
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(ok())  # out of turn
        return True

    server.script = answer_twice
    pool = Pool()
    try:
        await get(pool, server.url + "/1")
        while pool.open_connections:
            await asyncio.sleep(0.01)
        server.script = None
        await get(pool, server.url + "/2")
    finally:
        await pool.close()
    assert [s.connection for s in server.seen] == [1, 2]


async def test_the_limit_counts_connections_in_use_so_idle_ones_to_other_hosts_stay(server):
    """Ten hosts polled at once through a pool of 100: an idle connection to one host is no
    reason to close it for another's (that made a start-up burst a storm of TLS handshakes)."""
    other = await Server().start()
    observer = Recorder()
    pool = Pool(observer=observer, limit=1)
    try:
        for _ in range(3):
            await get(pool, server.url + "/1")
            await get(pool, other.url + "/1")
        assert pool.open_connections == 2  # one idle to each host
    finally:
        await pool.close()
        await other.stop()
    assert observer.waits == [0.0] * 6 and observer.opened == 2
    assert server.connections == 1 and other.connections == 1


class Held:
    """A script that answers each request once the test lets its target go."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, target: str) -> asyncio.Event:
        return self.gates.setdefault(target, asyncio.Event())

    async def __call__(self, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        await self.gate(seen.target).wait()
        writer.write(ok())
        return True


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never came true")


@pytest.fixture
async def two_hosts(server):
    """``server`` and another host, both answering a request once the test lets its target go."""
    other = await Server().start()
    server.script = other.script = held = Held()
    try:
        yield server, other, held
    finally:
        await other.stop()


async def test_at_its_limit_a_call_takes_an_idle_connection_to_its_host_without_waiting(two_hosts):
    a, b, held = two_hosts
    held.gate("/b1").set()
    observer = Recorder()
    pool = Pool(observer=observer, limit=1)
    try:
        await get(pool, b.url + "/b1")  # idle now
        a1 = asyncio.create_task(get(pool, a.url + "/a1"))  # the one slot, held
        await until(lambda: len(a.seen) == 1)
        held.gate("/b2").set()
        assert (await asyncio.wait_for(get(pool, b.url + "/b2"), 2)).status == 200  # no room needed
        held.gate("/a1").set()
        await a1
    finally:
        await pool.close()
    assert observer.opened == 2 and observer.waits == [0.0] * 3


async def test_a_connection_given_back_goes_to_a_call_for_its_own_host_first(two_hosts):
    """A full pool, a call for the other host first in line: the connection given back to ``a``
    goes to the call waiting for ``a`` and none is opened, where waking the first in line opened
    one to ``b`` and left ``a``'s idle (a start-up burst across ten hosts: 800 TLS handshakes
    for 1,000 accounts)."""
    a, b, held = two_hosts
    observer = Recorder()
    pool = Pool(observer=observer, limit=2)
    try:
        a1 = asyncio.create_task(get(pool, a.url + "/a1"))
        b1 = asyncio.create_task(get(pool, b.url + "/b1"))
        await until(lambda: len(a.seen) + len(b.seen) == 2)
        b2 = asyncio.create_task(get(pool, b.url + "/b2"))  # first in line
        await asyncio.sleep(0.02)
        a2 = asyncio.create_task(get(pool, a.url + "/a2"))
        await asyncio.sleep(0.02)
        held.gate("/a1").set()
        await a1
        await until(lambda: len(a.seen) == 2)  # a2 went, on a1's connection
        assert not b2.done() and observer.opened == 2
        for target in ("/a2", "/b1", "/b2"):
            held.gate(target).set()
        await asyncio.gather(a2, b1, b2)
    finally:
        await pool.close()
    assert observer.opened == 2 and a.connections == 1 and b.connections == 1


async def test_the_first_in_line_is_passed_over_at_most_limit_times(two_hosts):
    """Calls for a busy host keep giving their connection to the next call for it: the call for
    the other host, first in line, gets the room after ``limit`` of them, not when they stop."""
    a, b, held = two_hosts
    pool = Pool(limit=1)
    try:
        a1 = asyncio.create_task(get(pool, a.url + "/a1"))
        await until(lambda: len(a.seen) == 1)
        b1 = asyncio.create_task(get(pool, b.url + "/b1"))  # first in line
        await asyncio.sleep(0.02)
        later = [asyncio.create_task(get(pool, a.url + f"/a{i}")) for i in range(2, 5)]
        await asyncio.sleep(0.02)
        held.gate("/a1").set()
        await a1
        await until(lambda: len(a.seen) == 2)  # a2 passed b1, on a1's connection
        held.gate("/a2").set()
        await until(lambda: len(b.seen) == 1)  # then b1, though a3 waits for a's connection
        assert [s.target for s in a.seen] == ["/a1", "/a2"]
        for target in ("/b1", "/a3", "/a4"):
            held.gate(target).set()
        await asyncio.gather(b1, *later)
    finally:
        await pool.close()


async def test_a_host_at_its_share_waits_for_its_own_connections_while_another_host_opens(two_hosts):
    a, b, held = two_hosts
    observer = Recorder()
    pool = Pool(observer=observer, limit=4, limit_per_host=2)
    try:
        first = [asyncio.create_task(get(pool, a.url + f"/a{i}")) for i in (1, 2)]
        await until(lambda: len(a.seen) == 2)
        a3 = asyncio.create_task(get(pool, a.url + "/a3"))  # at its share: waits, room or not
        await asyncio.sleep(0.02)
        held.gate("/b1").set()
        await asyncio.wait_for(get(pool, b.url + "/b1"), 2)  # the other host still opens
        assert len(a.seen) == 2 and not a3.done()
        held.gate("/a1").set()
        await first[0]
        await until(lambda: len(a.seen) == 3)  # a3 on a1's connection
        for target in ("/a2", "/a3"):
            held.gate(target).set()
        await asyncio.gather(first[1], a3)
    finally:
        await pool.close()
    assert a.connections == 2 and b.connections == 1 and observer.opened == 3


async def test_a_dropped_connection_lets_a_host_at_its_share_open_anew(two_hosts):
    """A host's call waiting at its share goes once one of its connections is dropped (not
    given back): the room is counted per host, not only per connection given back."""
    a, _, held = two_hosts
    pool = Pool(limit=4, limit_per_host=1)
    try:
        a1 = asyncio.create_task(get(pool, a.url + "/a1", timeout=0.5))
        await until(lambda: len(a.seen) == 1)
        held.gate("/a2").set()
        a2 = asyncio.create_task(get(pool, a.url + "/a2", timeout=5.0))
        with pytest.raises(TimeoutError):
            await a1  # dropped, never answered
        assert (await asyncio.wait_for(a2, 2)).status == 200
    finally:
        held.gate("/a1").set()
        await pool.close()
    assert a.connections == 2


async def test_refused_and_unparsable_urls_fail_as_they_should(server):
    pool = Pool()
    try:
        await server.stop()
        with pytest.raises(OSError):
            await get(pool, server.url + "/1")
        with pytest.raises(ValueError):
            await get(pool, "ftp://127.0.0.1/x")
        with pytest.raises(ValueError):
            await get(pool, "http://user:pw@127.0.0.1/x")
        assert pool.open_connections == 0
    finally:
        await pool.close()
        await server.start()  # for the fixture's stop


async def test_over_tls_the_host_is_verified_and_the_connection_kept(tmp_path):
    pki = make_pki(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(pki.server_cert, pki.server_key)
    peer = await Server().start(tls=serving)
    trusting = ssl.create_default_context(cafile=str(pki.ca))
    pool = Pool(tls=trusting)
    stranger = Pool()  # the system's trust store: the test CA is not in it
    try:
        for _ in range(2):
            assert (await get(pool, peer.url + "/x")).status == 200
        with pytest.raises(ssl.SSLCertVerificationError):
            await get(stranger, peer.url + "/x")
    finally:
        await pool.close()
        await stranger.close()
        await peer.stop()
    assert [s.connection for s in peer.seen] == [1, 1]


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
async def test_answers_larger_than_a_read_arriving_together_each_keep_their_own_bytes(tmp_path, secure):
    """The pool reads every connection into one buffer: interleaved reads must not mix."""
    serving = trusting = None
    if secure:
        pki = make_pki(tmp_path)
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(pki.server_cert, pki.server_key)
        trusting = ssl.create_default_context(cafile=str(pki.ca))

    async def in_pieces(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        body = seen.target[1:].encode() * (100_000 // len(seen.target[1:]))
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for start in range(0, len(body), 7_000):
            writer.write(body[start : start + 7_000])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    peer = await Server(script=in_pieces).start(tls=serving)
    pool = Pool(tls=trusting)
    try:
        names = ["a", "bb", "ccc", "dddd"]
        replies = await asyncio.gather(*(get(pool, f"{peer.url}/{name}") for name in names))
    finally:
        await pool.close()
        await peer.stop()
    assert peer.connections == 4
    for name, reply in zip(names, replies, strict=True):
        assert reply.body == name.encode() * (100_000 // len(name))
