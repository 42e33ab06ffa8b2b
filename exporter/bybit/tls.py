"""One TLS client context for every connection the exporter makes to Bybit.

Given ``ssl=True``, asyncio (and so the websockets library) builds a fresh default context for
each connection and keeps it as long as the connection lives: the system's trust store loaded
and parsed again every time. On a Debian host with its 144 roots that is about 0.8 MB and
19 ms of CPU per connection, so a thousand accounts would hold some 800 MB of copies of the
same certificates and spend 19 s loading them at every cold start or reconnect storm. One
context, made on first use, serves every stream, every REST call and an HTTPS proxy alike.

asyncio also gives each TLS connection a 256 KiB read buffer, zero-filled and so resident from
the start: a quarter of a megabyte a connection for frames of a few hundred bytes.
:func:`lean_read_buffers` makes it one TLS record's size.

Trust is the system's default, as before: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` point it at
another store (a corporate proxy's CA, say) when set before the exporter starts. The store is
read once: a changed CA file takes effect at the next restart, not at the next reconnect.
"""

from __future__ import annotations

import asyncio.sslproto
import functools
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

SECURE_SCHEMES = frozenset({"https", "wss"})
# A TLS record carries at most 16 KiB: a buffer that size reads any of them; a large REST
# answer takes more reads, not more memory.
READ_BUFFER_BYTES = 16 * 1024


@functools.cache
def client_context() -> ssl.SSLContext:
    """The process's verifying client context (certificate and host name checked)."""
    return ssl.create_default_context()


def is_secure(url: str) -> bool:
    return urlsplit(url).scheme.lower() in SECURE_SCHEMES


def context_for(url: str | None) -> ssl.SSLContext | None:
    """The shared context for an ``https://`` or ``wss://`` URL; None for plain ones (and no URL)."""
    return client_context() if url is not None and is_secure(url) else None


def session_context(urls: Iterable[str]) -> ssl.SSLContext | bool:
    """What the REST session's connector gets: the shared context when any of ``urls`` is
    ``https://``; otherwise aiohttp's default (``True``), never used for plain HTTP, so a
    setup without TLS loads no trust store of its own."""
    return client_context() if any(is_secure(u) for u in urls) else True


def lean_read_buffers() -> None:
    """Give every TLS connection made from now on a read buffer of one record, not 256 KiB.

    Process-wide (asyncio's TLS transport takes the size from its class), so called once at
    start-up, like :func:`exporter.runtime.allocator.keep_memory_small`; only ever made smaller."""
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    current = getattr(protocol, "max_size", None)
    if isinstance(current, int) and current > READ_BUFFER_BYTES:
        protocol.max_size = READ_BUFFER_BYTES  # type: ignore[union-attr]
