"""HTTP/1.1 for a client, without I/O: a request as bytes, and an answer parsed from bytes fed in.

The REST poll is the exporter's hottest path: every account asks for its DCP window every few
seconds, a thousand accounts make 33 signed calls a second. A general-purpose client builds a
request object, a response object, a stream reader, timers and trace contexts for each call;
this module does what such a call needs and nothing else, so :mod:`exporter.http.pool` (the
asyncio shell around it) can send a request in one write and hand back its answer from the
callback that read its last byte.

What it reads it reads strictly, within limits, and otherwise raises :class:`ProtocolError`
(the connection is then closed, never reused):

- a head (status line and header fields) of at most :data:`MAX_HEAD` bytes; no obsolete line
  folding, no field without a name, no status that is not three digits;
- a body framed by ``Transfer-Encoding: chunked`` or a ``Content-Length`` (several that
  disagree, or one that is no number, is refused), or else by the end of the connection;
- within :class:`~exporter.runtime.bounded.BoundedBody`'s limit, on the wire and once
  inflated (:class:`~exporter.runtime.bounded.TooLarge`), and a Content-Length past it is
  refused before a byte of the body arrives;
- interim answers (``1xx``) are skipped; an answer to a request that has none
  (``204``, ``304``) has no body.

An answer is kept alive for the next request only when it says HTTP/1.1 and does not say
``Connection: close``. Bytes after the end its framing gives make the whole answer a
:class:`ProtocolError`: the framing lied (a Content-Length short of the body), so what it
framed is no answer to trust either.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy

from ..runtime.bounded import MAX_BODY, BoundedBody, TooLarge

#: The longest head (status line and fields) read; Bybit's are well under 2 KB.
MAX_HEAD = 64 << 10
#: The longest chunk-size line (with its extensions) or trailer line read in a chunked body.
MAX_CHUNK_LINE = 4 << 10

_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"
_WHITESPACE = " \t"
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class ProtocolError(OSError):
    """The peer's bytes are no HTTP/1.1 answer (or the connection ended inside one): a broken
    connection, as a reset one is (an ``OSError``), and never reused."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One parsed answer: what the caller reads, and whether its connection may serve the next."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    keep_alive: bool


def request_bytes(method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request as it goes on the wire: ``target`` is the path and query, sent as given
    (what was signed is what is sent). A CR, LF or NUL anywhere but at the end of a line is
    refused (``ValueError``): it would end the head early and smuggle a field of its own."""
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    length = "" if body is None else f"Content-Length: {len(body)}\r\n"
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{fields}{length}\r\n"
    lines = len(headers) + (3 if body is None else 4)  # each field, the request line, Host, the end
    if head.count("\n") != lines or head.count("\r") != lines or "\0" in head:
        raise ValueError("a request line or header holds a line break or NUL")
    return head.encode("latin-1") + body if body is not None else head.encode("latin-1")


class AnswerParser:
    """Bytes in (:meth:`feed`, :meth:`closed`), one :class:`Answer` out (:attr:`answer`, None
    until the answer is whole). One parser per request."""

    __slots__ = ("_body", "_buffer", "_chunk_left", "_framing", "_head", "_left", "answer", "limit")

    def __init__(self, limit: int = MAX_BODY) -> None:
        self.limit = limit
        self.answer: Answer | None = None
        self._buffer = bytearray()
        self._head: tuple[int, CIMultiDictProxy[str], bool] | None = None
        self._body: BoundedBody | None = None
        self._framing = ""  # "length", "chunked" or "close", once the head is read
        self._left = 0  # bytes of the body still to come ("length")
        self._chunk_left = -1  # bytes of the current chunk still to come; -1: a size line is next

    @property
    def started(self) -> bool:
        """Whether any byte of the answer has arrived (a reused connection closed before that is
        one the peer had already let go, and the request can be sent again on a new one)."""
        return self._head is not None or bool(self._buffer)

    def feed(self, data: bytes | memoryview) -> None:
        """Take in bytes read off the connection; raises :class:`ProtocolError` or :class:`TooLarge`."""
        if self.answer is not None:
            if data:
                raise ProtocolError("bytes after the answer")
            return
        self._buffer += data
        while self.answer is None and self._step():
            pass
        if self.answer is not None and self._buffer:
            # More than the framing said: the framing lied (a Content-Length short of the body),
            # so what it framed is no answer to trust either.
            self.answer = None
            raise ProtocolError("bytes after the answer")

    def closed(self) -> None:
        """The peer closed the connection: ends a body framed by the close, else the answer is cut."""
        if self.answer is not None:
            return
        if self._framing == "close" and self._head is not None and self._body is not None:
            self._finish(keep_alive=False)
            return
        raise ProtocolError("connection closed before the answer ended")

    # ------------------------------------------------------------------ steps

    def _step(self) -> bool:
        """One step forward on what is buffered; False when more bytes are needed."""
        if self._head is None:
            return self._read_head()
        if self._framing == "length":
            return self._read_length()
        if self._framing == "chunked":
            return self._read_chunk()
        self._take(len(self._buffer))  # "close": everything until the end of the connection
        return False

    def _read_head(self) -> bool:
        taken = self._until(_HEAD_END, MAX_HEAD, "answer head")
        if taken is None:
            return False
        head = taken.decode("latin-1")
        status_line, _, fields = head.partition("\r\n")
        version, status, keep_alive = _status_line(status_line)
        headers = _fields(fields) if fields else CIMultiDict[str]()
        if 100 <= status < 200:
            return True  # an interim answer: the real one follows
        connection = headers.get("Connection", "").lower()
        keep_alive = keep_alive and "close" not in connection
        self._head = (status, CIMultiDictProxy(headers), keep_alive)
        self._body = BoundedBody(headers.get("Content-Encoding", ""), self.limit)
        if status in (204, 304):
            self._finish(keep_alive)
            return False
        if "Transfer-Encoding" in headers:
            codings = [c.strip().lower() for c in ",".join(headers.getall("Transfer-Encoding")).split(",")]
            if codings[-1:] != ["chunked"]:
                raise ProtocolError("a transfer coding other than chunked")
            self._framing = "chunked"
            return True
        lengths = {v.strip() for v in headers.getall("Content-Length", ())}
        if lengths:
            if len(lengths) != 1 or not (length := lengths.pop()).isdigit() or not length.isascii():
                raise ProtocolError("an unusable Content-Length")
            self._left = int(length)
            if self._left > self.limit:
                raise TooLarge(self.limit, "Content-Length")
            self._framing = "length"
            return True
        self._framing = "close"
        self._head = (status, self._head[1], False)
        return True

    def _read_length(self) -> bool:
        self._left -= self._take(min(self._left, len(self._buffer)))
        if self._left == 0:
            self._finish(self._head[2] if self._head else False)
        return False

    def _read_chunk(self) -> bool:
        buffer = self._buffer
        if self._chunk_left > 0:
            self._chunk_left -= self._take(min(self._chunk_left, len(buffer)))
            if self._chunk_left:
                return False
            self._chunk_left = -2  # the chunk's CRLF is next
        if self._chunk_left == -2:
            if len(buffer) < 2:
                return False
            if buffer[:2] != _CRLF:
                raise ProtocolError("a chunk not ended by CRLF")
            del buffer[:2]
            self._chunk_left = -1
        line = self._line()
        if line is None:
            return False
        if self._chunk_left == -3:  # trailers, after the last chunk, until an empty line
            if not line:
                self._finish(self._head[2] if self._head else False)
            return True
        size = line.split(b";", 1)[0].strip(b" \t")
        if not size or size.strip(_HEX_DIGITS):
            raise ProtocolError("a chunk size that is no hex number")
        self._chunk_left = int(size, 16)
        if self._chunk_left == 0:
            self._chunk_left = -3
        elif self._chunk_left > self.limit:
            raise TooLarge(self.limit, "body received")
        return True

    def _line(self) -> bytes | None:
        return self._until(_CRLF, MAX_CHUNK_LINE, "a chunk line")

    def _until(self, delimiter: bytes, limit: int, what: str) -> bytes | None:
        """The buffered bytes before ``delimiter`` (both taken off the buffer), None until it has
        arrived; past ``limit`` bytes without it, a :class:`ProtocolError`."""
        buffer = self._buffer
        end = buffer.find(delimiter)
        if end > limit or (end < 0 and len(buffer) > limit):
            raise ProtocolError(f"{what} past {limit} bytes")
        if end < 0:
            return None
        taken = bytes(buffer[:end])
        del buffer[: end + len(delimiter)]
        return taken

    def _take(self, n: int) -> int:
        """Move ``n`` buffered bytes into the body (counted, inflated); returns ``n``."""
        if n and self._body is not None:
            buffer = self._buffer
            self._body.feed(bytes(buffer[:n]) if n < len(buffer) else bytes(buffer))
            del buffer[:n]
        return n

    def _finish(self, keep_alive: bool) -> None:
        assert self._head is not None and self._body is not None
        status, headers, _ = self._head
        self.answer = Answer(status, headers, self._body.result(), keep_alive)


def _status_line(line: str) -> tuple[str, int, bool]:
    """``HTTP/1.x 200 OK`` → version, status, and whether the version allows keep-alive."""
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " "):
        raise ProtocolError("no HTTP/1.x status line")
    return version, int(code), version == "HTTP/1.1"


def _fields(text: str) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    add = headers.add
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        # No name, or white space around it (obsolete line folding starts a line with it).
        if not colon or not name or name[0] in _WHITESPACE or name[-1] in _WHITESPACE:
            raise ProtocolError("a malformed header field")
        add(name, value.strip())
    return headers
