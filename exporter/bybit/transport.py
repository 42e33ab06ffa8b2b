"""How a REST call reaches Bybit: the seam between :class:`.rest.RestClient` and an HTTP client.

The client builds and signs a call and decides what its answer means; a transport only carries
it (:class:`exporter.http.pool.Transport`: method, URL, headers and body in, status, headers
and the whole body out, inflated within the body limit). Two carry it:

- the fleet's :class:`exporter.http.pool.Pool`, keep-alive HTTP/1.1 connections made for the
  poll (a thousand accounts poll through it);
- :class:`AiohttpTransport`, an aiohttp session: for calls through an HTTP(S) proxy (the pool
  does not speak to proxies), and for the drill, the doctor and anyone who hands the client
  a session of their own.

Both leave redirects unfollowed (a 3xx is an answer, refused by :func:`.answers.classify`),
read within :data:`~exporter.runtime.bounded.MAX_BODY` on the wire and once inflated, bound
the whole call by its timeout, and note in the call's :class:`~exporter.http.pool.RequestTiming`
when it had its connection, answered or not.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from ..http.pool import Reply, RequestTiming, Transport
from ..runtime.bounded import MAX_BODY, read_bounded
from .wire import REQUEST_TIMING


class AiohttpTransport:
    """A REST call through an ``aiohttp.ClientSession`` (its connector's wire timing, when the
    fleet's :class:`.wire.TimedConnector`, or a ``TraceConfig`` of :func:`.wire.session_tracing`)."""

    __slots__ = ("_timeouts", "session")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
        proxy: str | None,
        timing: RequestTiming,
    ) -> Reply:
        total = self._timeouts.get(timeout)
        if total is None:
            total = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        token = REQUEST_TIMING.set(timing)  # for the fleet's TimedConnector (trace_request_ctx: a TraceConfig's)
        try:
            async with self.session.request(
                method,
                URL(url, encoded=True),  # sent as signed: no re-quoting
                data=body,
                headers=headers,
                timeout=total,
                allow_redirects=False,
                proxy=proxy,
                trace_request_ctx=timing,
                auto_decompress=False,  # inflated by read_bounded, within MAX_BODY
            ) as resp:
                length = resp.content_length
                if length is not None and length <= MAX_BODY and "Content-Encoding" not in resp.headers:
                    # Bounded by its Content-Length (aiohttp reads no byte past it) and not to be
                    # inflated: read_bounded's counting would find what this finds, at more cost.
                    raw = await resp.read()
                else:
                    raw = await read_bounded(resp, MAX_BODY)
                return Reply(resp.status, resp.headers, raw)
        finally:
            REQUEST_TIMING.reset(token)


def transport_of(session: aiohttp.ClientSession | Transport) -> Transport:
    """What a REST client sends through: a transport as it is, an aiohttp session adapted."""
    if isinstance(session, aiohttp.ClientSession):
        return AiohttpTransport(session)
    return session
