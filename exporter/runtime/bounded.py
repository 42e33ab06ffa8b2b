"""Reading an HTTP answer's body within a byte limit, on the wire and after decompression.

``resp.read()`` keeps whatever a server sends: an endless chunked body, or a few megabytes of
gzip that inflate to gigabytes, grow the process until it dies, and every account with it. So
every answer the exporter reads goes through :class:`BoundedBody`: the fleet's REST pool
feeds it what it reads off the socket (:mod:`exporter.http.protocol`), and an aiohttp answer
(a REST call through a proxy, the guardian's Prometheus query) is asked for with
``auto_decompress=False`` and read by :func:`read_bounded`: the raw stream in pieces, counted, and
inflated by :mod:`zlib` at most up to the limit, counted again. Past either count the
connection is closed (never handed back to the pool half read) and :class:`TooLarge` is
raised; nothing of the body is returned to be parsed. Time is not bounded here: the call's
timeout (the pool's, or ``aiohttp.ClientTimeout(total=...)``) covers the body too, so a body
trickling in a byte a second ends there.
"""

from __future__ import annotations

import zlib

import aiohttp

# A Bybit answer (an order-history page of 50 orders is tens of kilobytes) or a Prometheus query's
# answer is far below this; a body past it, raw or inflated, is no answer worth keeping.
MAX_BODY = 4 << 20
# What to ask for with ``auto_decompress=False``: the encodings :func:`read_bounded` inflates.
ACCEPT_ENCODING = "gzip, deflate"
_READ_CHUNK = 64 << 10


class TooLarge(Exception):
    """The body went past the limit (received or inflated); the connection was closed."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        super().__init__(f"{what} past {limit} bytes")


class BadEncoding(aiohttp.ClientPayloadError):
    """A body that does not inflate as its Content-Encoding says: a broken answer, like any
    other payload aiohttp cannot read (so callers count it as they count those)."""


def _inflater(encoding: str, first: bytes) -> zlib._Decompress | None:
    """gzip; deflate in zlib's format (RFC 9110), or raw when the first two bytes are no zlib
    header (RFC 1950: CM 8 and FCHECK), as some servers send it and aiohttp reads it; identity
    and unknown encodings pass through (and then fail to parse)."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        zlib_header = len(first) < 2 or (first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0)
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
    return None


class BoundedBody:
    """A body taken in as it arrives, raw and inflated, within ``limit`` bytes each (sans-I/O:
    :func:`read_bounded` feeds it aiohttp's chunks, :mod:`exporter.http.protocol` the bytes it
    reads off its socket). ``encoding`` is the answer's Content-Encoding; past either count
    :meth:`feed` raises :class:`TooLarge`."""

    __slots__ = ("_body", "_encoding", "_inflater", "_received", "limit")

    def __init__(self, encoding: str, limit: int = MAX_BODY) -> None:
        self.limit = limit
        self._encoding = encoding.strip().lower()
        self._inflater: zlib._Decompress | None = None
        self._received = 0
        self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        limit = self.limit
        first = self._received == 0
        self._received += len(chunk)
        if self._received > limit:
            raise TooLarge(limit, "body received")
        if first and self._encoding:
            self._inflater = _inflater(self._encoding, chunk)
        inflater = self._inflater
        body = self._body
        if inflater is None:
            body += chunk
            return
        data = chunk
        while data:
            # At most one byte past the room left: enough to tell that it does not fit.
            body += _inflate(inflater, data, limit - len(body) + 1)
            if len(body) > limit:
                raise TooLarge(limit, "body inflated")
            data = inflater.unconsumed_tail

    def result(self) -> bytes:
        """The whole body, inflated (the rest of the inflater flushed, and counted)."""
        if self._inflater is not None:
            self._body += _flush(self._inflater)
            if len(self._body) > self.limit:
                raise TooLarge(self.limit, "body inflated")
        return bytes(self._body)


async def read_bounded(resp: aiohttp.ClientResponse, limit: int = MAX_BODY) -> bytes:
    """The body of ``resp`` (requested with ``auto_decompress=False``), inflated; at most
    ``limit`` bytes received and at most ``limit`` bytes once inflated, else :class:`TooLarge`
    (a Content-Length past the limit is refused before a byte is read)."""
    try:
        if resp.content_length is not None and resp.content_length > limit:
            raise TooLarge(limit, "Content-Length")
        body = BoundedBody(resp.headers.get("Content-Encoding", ""), limit)
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            body.feed(chunk)
        return body.result()
    except BaseException:
        resp.close()  # dropped, not pooled: the rest of the body may still be on its way
        raise


def _inflate(inflater: zlib._Decompress, data: bytes, max_length: int) -> bytes:
    try:
        return inflater.decompress(data, max_length)
    except zlib.error as exc:
        raise BadEncoding(f"body does not inflate: {exc}") from None


def _flush(inflater: zlib._Decompress) -> bytes:
    try:
        return inflater.flush()
    except zlib.error as exc:
        raise BadEncoding(f"body does not inflate: {exc}") from None
