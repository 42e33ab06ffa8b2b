"""The exporter's HTTP face (aiohttp): the status board, its JSON, telemetry, liveness and readiness.

The status board (``/``, ``/api/v1/status``; see :mod:`exporter.status`) reads the same
registry Prometheus scrapes, so it can never show a value the metrics do not; every value
on it is HTML-escaped, and it is built in a worker thread so the event loop keeps its timing. With a web config, every
path (the health endpoints too, as in the Go exporter-toolkit) answers only to valid
basic-auth credentials and carries the configured headers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from ..metrics import Metrics
from ..metrics.deflate import LEVEL
from ..metrics.labelled import writer, written_as
from ..runtime.allocator import give_back
from ..runtime.pauses import freeze_survivors, no_collections
from ..status.service import StatusService
from .body import Parts, Turns
from .config import WebConfigSource

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GZIP_LEVEL = LEVEL  # a 1,000-account exposition shrinks fifteenfold at 1, in half the time 6 takes for 15 % less


class ExporterState(Protocol):
    """What the web layer needs from the running exporter."""

    @property
    def ready(self) -> bool: ...

    def account_names(self) -> Sequence[str]: ...


def make_app(
    metrics: Metrics,
    state: ExporterState,
    *,
    telemetry_path: str = "/metrics",
    clock: Callable[[], float] = time.time,
    web_config: WebConfigSource | None = None,
    middlewares: Iterable[Callable[..., Awaitable[web.StreamResponse]]] = (),
    status: StatusService | None = None,
    bearer_routes: Collection[str] = (),
) -> web.Application:
    """``middlewares`` run first (the connection guard's); then the web config's rules.
    ``status`` samples while the app runs (by default every 5 s on the system clock).
    ``bearer_routes``: names of routes that check a bearer token of their own (the guardian's
    liveness route); basic auth does not apply to them (see :func:`secured`)."""
    guards = list(middlewares)
    if web_config is not None:
        guards.append(secured(web_config, bearer_routes))
    app = web.Application(middlewares=guards)
    board = status if status is not None else StatusService(metrics)
    app.cleanup_ctx.append(board.running)
    deflating = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-gzip")  # one: a piece's steps in order

    async def stop_deflating(app: web.Application) -> AsyncIterator[None]:
        yield
        deflating.shutdown(wait=False, cancel_futures=True)

    app.cleanup_ctx.append(stop_deflating)

    async def landing(request: web.Request) -> web.Response:
        account = request.query.get("account") or None
        text = await asyncio.to_thread(
            board.html,
            state.account_names(),
            now=clock(),
            ready=state.ready,
            account=account,
            telemetry_path=telemetry_path,
        )
        return web.Response(text=text, content_type="text/html")

    async def status_json(request: web.Request) -> web.Response:
        account = request.query.get("account") or None
        body = await asyncio.to_thread(
            board.json, state.account_names(), now=clock(), ready=state.ready, account=account
        )
        return web.json_response(body)

    async def telemetry(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        openmetrics = written_as(encoder)
        body: bytes | Parts
        if openmetrics is None:  # a format only prometheus_client writes (OpenMetrics with other escaping)
            body = await asyncio.to_thread(_render, encoder, metrics, gzipped)
        else:  # sent as written, a chunk at a time (body.py)
            parts = await _written_in_turns(metrics, openmetrics, gzipped, deflating)
            body = Parts(parts, content_type, on_sent=give_back)  # the pages the parts held, returned
            del parts
        freeze_survivors()  # the scrape's garbage must not set off a full collection that stalls pongs
        headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if state.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: waiting for every account's first DCP poll\n")

    app.router.add_get("/", landing)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get(telemetry_path, telemetry)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def _written_in_turns(metrics: Metrics, openmetrics: bool, gzipped: bool, pool: Executor) -> list[bytes]:
    """The exposition written on the event loop, handing the loop a turn every
    :data:`~.body.TURN_SECONDS`; the body as the parts it was written in (see :mod:`.body`).

    Rendering 1,000 accounts is tens of ms of Python. In a worker thread it still holds the
    interpreter while it runs, and the loop got it back only when the interpreter chose
    (17 to 25 ms at worst, measured); here the writer stops after each part of a few hundred
    series (:func:`.labelled.writer`) and the loop runs whatever is due (a pong to read, a ping
    to send) whenever the scrape has had its turn. Values change only on the loop, so a family
    read here is read whole. The compressing (a third of the time) is done in ``pool``'s one
    thread meanwhile: zlib lets go of the interpreter while it deflates, so it takes a second
    core rather than the loop's time.
    """
    parts = writer(metrics.registry, openmetrics=openmetrics, gzipped=gzipped, pool=pool)
    with no_collections():  # the caller collects after (pauses.py)
        turns = Turns()
        while True:
            try:
                step = next(parts)
            except StopIteration as done:
                return done.value
            if step is not None:  # a piece still being compressed in the pool's thread
                await asyncio.wrap_future(step)
                turns.restart()
            elif turns.due():
                await turns.take()


def _render(encoder: Callable[..., bytes], metrics: Metrics, gzipped: bool) -> bytes:
    with no_collections():  # the caller collects after (pauses.py)
        body = encoder(metrics.registry)
    return gzip.compress(body, compresslevel=GZIP_LEVEL) if gzipped else body


def secured(
    source: WebConfigSource, bearer_routes: Collection[str] = ()
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The web config's rules for every request: its headers on every answer, then basic auth.

    A request has one ``Authorization`` header, so a route that authenticates with a bearer
    token cannot also carry basic-auth credentials: routes named in ``bearer_routes`` are
    checked by their own token only (TLS and the headers still apply to them).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = source.current()
        auth = source.auth
        if auth.enabled and request.match_info.route.name not in bearer_routes:
            user, password = _credentials(request.headers.get("Authorization", ""))
            ok = False if user is None else await auth.verify(user, password)
            if not ok:
                response: web.StreamResponse = (
                    web.Response(
                        status=401,
                        text="Unauthorized\n",
                        headers={"WWW-Authenticate": 'Basic realm="bybit-dcp-exporter", charset="UTF-8"'},
                    )
                    if ok is False
                    else web.Response(status=503, text="busy checking passwords; retry\n", headers={"Retry-After": "1"})
                )
                response.headers.update(config.headers)
                return response
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(config.headers)
            raise
        response.headers.update(config.headers)
        return response

    return middleware


def _credentials(header: str) -> tuple[str | None, str]:
    """(user, password) from an ``Authorization: Basic`` header, or (None, "") when absent or malformed."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None, ""
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    return (user, password) if sep else (None, "")
