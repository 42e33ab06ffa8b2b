"""A scrape's body sent as the parts it was written in, with the event loop given its turns.

At 1,000 accounts a plain-text /metrics body is 7 MB. Joined into one byte string and handed
to the socket at once, it cost the event loop a single step of about 12 ms (the join copying
7 MB into fresh memory, then the kernel copying it again), in which no pong was read and no
ping sent. :class:`Parts` sends the writer's parts instead, gathered into chunks of at most
:data:`CHUNK_BYTES`, and hands the loop a turn whenever it has written for :data:`TURN_SECONDS`
(:class:`Turns`, which the writing of the exposition uses too). The bytes sent are the same
and the Content-Length is known before the first is sent.

Once the last chunk is written, the payload lets its parts go and calls ``on_sent``: the web
app hands the allocator back the pages those megabytes held
(:func:`exporter.runtime.allocator.give_back`), which otherwise stayed resident after every
scrape, several MB at 1,000 accounts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

TURN_SECONDS = 0.001  # how long a scrape works (writes, sends) before the event loop has a turn
CHUNK_BYTES = 256 * 1024  # a copy of this much takes tens of µs; a socket write, a little more


class Turns:
    """When a long piece of work on the event loop should let the loop run: every :data:`TURN_SECONDS`."""

    __slots__ = ("_clock", "_seconds", "_until")

    def __init__(self, seconds: float = TURN_SECONDS, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock, self._seconds = clock, seconds
        self._until = clock() + seconds

    def restart(self) -> None:
        """A turn was had some other way (an await that yielded): a full slice from now."""
        self._until = self._clock() + self._seconds

    def due(self) -> bool:
        return self._clock() >= self._until

    async def take(self) -> None:
        """Let the loop run whatever is ready, then start a new slice."""
        await asyncio.sleep(0)
        self.restart()


class Parts(Payload):
    """A response body given as byte strings to send one after the other (joined, the body)."""

    def __init__(
        self,
        parts: Sequence[bytes],
        content_type: str,
        *,
        turn_seconds: float = TURN_SECONDS,
        on_sent: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(parts, content_type=content_type)
        self._parts = parts
        self._total = sum(map(len, parts))
        self._turn_seconds = turn_seconds
        self._on_sent = on_sent

    @property
    def size(self) -> int:
        """The body's length: aiohttp's Content-Length."""
        return self._total

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """The body, joined (a gzipped one is not text, so not through :meth:`decode`)."""
        return b"".join(self._parts)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._parts).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        """The parts gathered into chunks of about :data:`CHUNK_BYTES` (the last short), at most
        ``content_length`` bytes in all, the loop given a turn every :data:`TURN_SECONDS`.
        The last part taken fills ``left`` exactly, so every chunk is written inside the loop."""
        left = self._total if content_length is None else min(content_length, self._total)
        turns = Turns(self._turn_seconds)
        chunk: list[bytes] = []
        size = 0
        for part in self._parts:
            if left <= 0:
                break
            if len(part) > left:
                part = part[:left]
            chunk.append(part)
            size += len(part)
            left -= len(part)
            if size >= CHUNK_BYTES or left <= 0:
                await writer.write(b"".join(chunk) if len(chunk) > 1 else chunk[0])
                chunk, size = [], 0
                if turns.due():
                    await turns.take()
        # Sent: nothing reads the parts again (a body is written once), so they go now, not
        # when aiohttp lets the response go.
        self._parts = self._value = ()
        if self._on_sent is not None:
            self._on_sent()
