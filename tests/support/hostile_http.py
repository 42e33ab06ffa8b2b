"""A hostile HTTP server on 127.0.0.1: forwards to an upstream (the simulator) until armed, then
answers the armed requests with a body no reader should keep: a gzip or deflate bomb, an endless
chunked body, a Content-Length that lies either way, or a body that trickles a byte a second.

Raw asyncio, not aiohttp's server, so that every byte (and every lie) is exactly what is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import zlib

import aiohttp

BOMB_INFLATED = 512 << 20  # what a bomb inflates to; about 0.5 MB on the wire
KINDS = ("gzip_bomb", "deflate_bomb", "endless_chunked", "length_short", "length_long", "trickle")
# Not hostile: the upstream's answer, compressed as a proxy in front of it might (raw: deflate without zlib's header).
ENCODED = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "deflate_raw": -zlib.MAX_WBITS}


@functools.cache
def bomb(encoding: str, inflated: int = BOMB_INFLATED) -> bytes:
    """Zeros, ``inflated`` bytes of them (whole MiB), compressed: gzip, or deflate in zlib's format.

    Compressing 512 MiB at level 9 costs 1.5 s of CPU, in every worker that needs a bomb. After a
    full flush the compressor starts afresh, so each further MiB of zeros compresses to the same
    bytes: two MiB are compressed, the second repeated, and the trailer's checksum (CRC-32 and
    length for gzip, Adler-32 for zlib) computed over the zeros, which is quick. The stream is one
    zlib could have written, and a reader inflates it to the same zeros (tests/sim/test_bounded_reads.py inflates it, as an e2e test).
    """
    gzip = encoding == "gzip"
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
    block = bytes(1 << 20)
    first = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    assert packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH) == again  # each MiB: the same bytes
    trailer_size = 8 if gzip else 4
    end = packer.flush(zlib.Z_FINISH)[:-trailer_size]  # the last (empty) block, without the trailer
    blocks = inflated >> 20
    if gzip:
        crc = 0
        for _ in range(blocks):
            crc = zlib.crc32(block, crc)
        trailer = crc.to_bytes(4, "little") + (inflated & 0xFFFFFFFF).to_bytes(4, "little")
    else:
        adler = 1
        for _ in range(blocks):
            adler = zlib.adler32(block, adler)
        trailer = adler.to_bytes(4, "big")
    return first + again * (blocks - 1) + end + trailer


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} OK", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


class HostileHttp:
    """``arm(kind, path, count)``: the next ``count`` requests to ``path`` get ``kind``; the others go upstream."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self._armed: dict[str, list[str]] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None
        self.served: dict[str, int] = {}
        self.sent: dict[str, int] = {}  # bytes written per hostile kind

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def arm(self, kind: str, path: str, count: int = 1) -> None:
        assert kind in KINDS or kind in ENCODED, kind
        self._armed.setdefault(path, []).extend([kind] * count)

    def armed(self, path: str) -> int:
        return len(self._armed.get(path, []))

    async def __aenter__(self) -> HostileHttp:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._http is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        await self._http.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                method, target, headers, body = request
                path = target.split("?", 1)[0]
                queue = self._armed.get(path)
                kind = queue.pop(0) if queue else None
                if kind is not None:
                    self.served[kind] = self.served.get(kind, 0) + 1
                if kind in ENCODED:
                    await self._forward(method, target, headers, body, writer, ENCODED[kind])
                elif kind is not None:
                    await self._hostile(kind, writer)
                    return  # every hostile answer ends its connection
                else:
                    await self._forward(method, target, headers, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client hung up, or the server stops
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
        body = await reader.readexactly(length) if length else b""
        return method, target, headers, body

    async def _forward(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
        wbits: int | None = None,
    ) -> None:
        assert self._http is not None and self.upstream is not None
        keep = {k: v for k, v in headers.items() if k.lower().startswith("x-bapi") or k.lower() == "content-type"}
        async with self._http.request(
            method, self.upstream + target, headers=keep, data=body or None, allow_redirects=False
        ) as resp:
            data = await resp.read()
            out = {
                k: v for k, v in resp.headers.items() if k.lower().startswith("x-bapi") or k.lower() == "content-type"
            }
            if wbits is not None:
                packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
                data = packer.compress(data) + packer.flush()
                out["Content-Encoding"] = "gzip" if wbits > zlib.MAX_WBITS else "deflate"
            out["Content-Length"] = str(len(data))
            writer.write(_head(resp.status, out) + data)
        await writer.drain()

    async def _hostile(self, kind: str, writer: asyncio.StreamWriter) -> None:
        json_type = {"Content-Type": "application/json"}
        if kind in ("gzip_bomb", "deflate_bomb"):
            encoding = "gzip" if kind == "gzip_bomb" else "deflate"
            data = bomb(encoding)
            writer.write(_head(200, {**json_type, "Content-Encoding": encoding, "Content-Length": str(len(data))}))
            await self._send(kind, writer, data)
        elif kind == "endless_chunked":
            writer.write(_head(200, {**json_type, "Transfer-Encoding": "chunked"}))
            chunk = b"x" * (64 << 10)
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            while True:  # ends when the client hangs up (or the server is stopped)
                await self._send(kind, writer, framed)
        elif kind == "length_short":
            # Claims 12 bytes, then sends 64 MiB more on the same connection.
            writer.write(_head(200, {**json_type, "Content-Length": "12"}))
            await self._send(kind, writer, b'{"retCode":0')
            for _ in range(1024):
                await self._send(kind, writer, b"y" * (64 << 10))
        elif kind == "length_long":
            # Claims 1,000 bytes, sends 100 and closes.
            writer.write(_head(200, {**json_type, "Content-Length": "1000"}))
            await self._send(kind, writer, b'{"retCode":0,"result":' + b" " * 78)
        elif kind == "trickle":
            writer.write(_head(200, {**json_type, "Content-Length": "100000"}))
            await writer.drain()
            while True:
                await self._send(kind, writer, b" ")
                await asyncio.sleep(1.0)

    async def _send(self, kind: str, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.sent[kind] = self.sent.get(kind, 0) + len(data)
        await writer.drain()
