"""The exporter's HTTP face (aiohttp): landing page, telemetry, liveness and readiness.

The landing page reads the same registry Prometheus scrapes, so it can never show a
value the metrics do not; every value on it is HTML-escaped. With a web config, every
path (the health endpoints too, as in the Go exporter-toolkit) answers only to valid
basic-auth credentials and carries the configured headers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import html
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from . import __version__
from .dcp import PRODUCTS
from .metrics import Metrics
from .monitor.account import NOT_AVAILABLE
from .webconfig import WebConfigSource

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GZIP_LEVEL = 6  # a 1,000-account exposition shrinks about tenfold; higher levels cost CPU for little

NAME = "bybit-dcp-exporter"


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
) -> web.Application:
    """``middlewares`` run first (the connection guard's); then the web config's rules."""
    guards = list(middlewares)
    if web_config is not None:
        guards.append(secured(web_config))
    app = web.Application(middlewares=guards)

    async def landing(request: web.Request) -> web.Response:
        return web.Response(text=render_landing(metrics, state, telemetry_path, clock()), content_type="text/html")

    async def telemetry(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # Rendering is CPU-bound (about 1 s for 1,000 accounts, see benchmarks/bench_fleet.py).
        # In a worker thread the interpreter hands the event loop a turn every few ms, so
        # pings and pongs keep their timing while Prometheus scrapes. The registry's
        # metrics are thread-safe; nothing else runs off the loop.
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        body = await asyncio.to_thread(_render, encoder, metrics, gzipped)
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
    app.router.add_get(telemetry_path, telemetry)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def _render(encoder: Callable[..., bytes], metrics: Metrics, gzipped: bool) -> bytes:
    body = encoder(metrics.registry)
    return gzip.compress(body, compresslevel=GZIP_LEVEL) if gzipped else body


def secured(source: WebConfigSource) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The web config's rules for every request: its headers on every answer, then basic auth."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = source.current()
        auth = source.auth
        if auth.enabled:
            user, password = _credentials(request.headers.get("Authorization", ""))
            if user is None or not await asyncio.to_thread(auth.check, user, password):
                response: web.StreamResponse = web.Response(
                    status=401,
                    text="Unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="bybit-dcp-exporter", charset="UTF-8"'},
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


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample in the registry, collected once per page view."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _fmt_seconds(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f} s"


def _fmt_time(value: float | None) -> str:
    if not value:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def render_landing(metrics: Metrics, state: ExporterState, telemetry_path: str, now: float) -> str:
    samples = _samples(metrics)

    def get(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    esc = html.escape
    rows = []
    for account in state.account_names():
        a = {"account": account}
        connected = get("bybit_dcp_ws_connected", **a)
        up = get("bybit_dcp_up", **a)
        errors = [dict(labels) for (name, labels) in samples if name == "bybit_dcp_last_poll_error_info"]
        error = next((e for e in errors if e["account"] == account), None)
        poll = "yes" if up else "no" if error is None else f"no: {error['code']} – {error['hint']}"
        states = [get("bybit_dcp_enabled", **a, product=p) for p in PRODUCTS]
        windows = []
        if up and not any(states):
            windows.append(esc(NOT_AVAILABLE))
        for product, enabled in zip(PRODUCTS, states, strict=True):
            window = get("bybit_dcp_window_seconds", **a, product=product)
            desired = get("bybit_dcp_desired_window_seconds", **a, product=product)
            if enabled is None:  # no good poll yet, or the last one failed: never "off"
                text = "unknown"
            else:
                text = f"{window:g} s" if enabled and window is not None else "off"
            if desired is not None:
                text += f" (desired {desired:g} s)"
            if get("bybit_dcp_ws_dcp_subscribed", **a, product=product):
                text += " [guarded]"
            windows.append(f"{esc(product)}: {esc(text)}")
        rtt_sum = get("bybit_dcp_ws_ping_rtt_seconds_sum", **a)
        rtt_count = get("bybit_dcp_ws_ping_rtt_seconds_count", **a)
        rtt = (
            f"{1000 * rtt_sum / rtt_count:.1f} ms (mean of {rtt_count:g})" if rtt_sum is not None and rtt_count else "–"
        )
        gap = get("bybit_dcp_ws_ping_gap_seconds", **a)
        last_triggers = [get("bybit_dcp_last_trigger_timestamp_seconds", **a, product=p) for p in PRODUCTS]
        last_trigger = max((t for t in last_triggers if t), default=None)
        triggers = sum(get("bybit_dcp_triggers_total", **a, product=p) or 0 for p in PRODUCTS)
        rows.append(
            "<tr>"
            f"<td>{esc(account)}</td>"
            f"<td>{esc(poll)}</td>"
            f"<td>{'yes' if connected else 'no'}</td>"
            f"<td>{'<br>'.join(windows)}</td>"
            f"<td>{esc(_fmt_seconds(gap))}</td>"
            f"<td>{esc(rtt)}</td>"
            f"<td>{esc(_fmt_time(last_trigger))} ({triggers:g} total)</td>"
            "</tr>"
        )
    ready = "ready" if state.ready else "starting (waiting for the first DCP poll of every account)"
    path = esc(telemetry_path, quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{NAME}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}</style></head>
<body><h1>{NAME}</h1>
<p>Version {esc(__version__)} &middot; {esc(ready)} &middot; <a href="{path}">Metrics</a>
&middot; <a href="/healthz">healthz</a> &middot; <a href="/readyz">readyz</a></p>
<table><thead><tr><th>Account</th><th>DCP poll up</th><th>Stream connected</th><th>DCP window per product</th>
<th>Ping gap</th><th>Ping RTT</th><th>Last DCP trigger</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<p>Page rendered {esc(_fmt_time(now))}.</p>
</body></html>
"""
