"""The status board as one HTML page: inline CSS, inline SVG sparklines, a few lines of script.

No external asset, so it works offline and behind any proxy. Every value is HTML-escaped.
Colour is never the only signal: each state and severity is also written as a word. The
script re-fetches the page and swaps the board in place (no flicker, scroll kept); without
script a ``<noscript>`` meta refresh reloads it.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable
from urllib.parse import quote

from .. import __version__
from .events import Event
from .model import STATES, AccountStatus, Board, ProductStatus, ago
from .sampler import FLAPPING_WINDOW_SECONDS, HISTORY_SECONDS, RTT_WINDOW_SECONDS

NAME = "bybit-dcp-exporter"
REFRESH_SECONDS = 10
SPARK_WIDTH, SPARK_HEIGHT = 180, 32
FLAPPING_MINUTES, RTT_MINUTES = FLAPPING_WINDOW_SECONDS / 60, RTT_WINDOW_SECONDS / 60
MARKS = {"down": "✖", "unknown": "?", "degraded": "!", "ok": "✔"}

esc = html.escape

CSS = """:root{color-scheme:light dark;--down:#c62828;--unknown:#616161;--degraded:#a15c00;--ok:#2e7d32}
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:75em;padding:.6em}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:0;display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
a{color:inherit}.muted{opacity:.75;font-size:.9em}
.s-down{--c:var(--down)}.s-unknown{--c:var(--unknown)}.s-degraded{--c:var(--degraded)}.s-ok{--c:var(--ok)}
.ev-critical{--c:var(--down)}.ev-warning{--c:var(--degraded)}.ev-good{--c:var(--ok)}
.badge{background:var(--c);color:#fff;font-weight:700;padding:0 .45em;border-radius:.3em;white-space:nowrap}
.acct{border:1px solid #8885;border-left:.45em solid var(--c);border-radius:.4em;padding:.4em .7em;margin:.6em 0}
.reasons{margin:.3em 0;padding-left:1.2em}.facts{display:grid;gap:.2em 1em;margin:.3em 0;
grid-template-columns:repeat(auto-fill,minmax(13em,1fr))}.facts b{display:block;font-size:.8em;opacity:.75}
.wrap{overflow-x:auto}table{border-collapse:collapse;font-size:.9em}
td,th{padding:.1em .5em;text-align:left;border-bottom:1px solid #8884}
@media (max-width:40em){.wrap table,.wrap tbody,.wrap tr{display:block}.wrap thead{display:none}
.wrap tr{border-bottom:1px solid #8884;padding:.15em 0}.wrap td{display:inline-block;border:0;padding:0 .7em 0 0}
.wrap td:first-child{display:block;font-weight:700}.wrap td[data-label]::before{content:attr(data-label) " ";opacity:.75}}
body{overflow-wrap:anywhere}
.sparks{display:flex;flex-wrap:wrap;gap:.3em 1.2em}.spark{stroke:currentColor;fill:none;stroke-width:1.2}
.limit{stroke:var(--down);stroke-dasharray:3 3;stroke-width:1}
#events ol{list-style:none;padding:0}#events li{border-left:.35em solid var(--c);padding:.1em .5em;margin:.2em 0}
.counts{display:flex;flex-wrap:wrap;gap:.3em .6em;align-items:center}"""

SCRIPT = f"""(()=>{{const b=document.getElementById("board");let n=0;
setInterval(async()=>{{try{{const r=await fetch(location.href,{{cache:"no-store"}});if(!r.ok)return;
const f=new DOMParser().parseFromString(await r.text(),"text/html").getElementById("board");
if(f){{b.replaceChildren(...f.childNodes);b.dataset.refreshes=++n;}}}}catch(e){{}}}},{REFRESH_SECONDS * 1000});}})();"""


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def sparkline(
    times: list[float],
    values: list[float],
    now: float,
    label: str,
    fmt: Callable[[float], str],
    limit: float | None = None,
) -> str:
    """An inline SVG line of ``values`` over the last 15 minutes; a gap where there was no value."""
    start = now - HISTORY_SECONDS
    points = [(t, v) for t, v in zip(times, values, strict=True) if t >= start]
    seen = [v for _, v in points if not math.isnan(v)]
    if not seen:
        return f'<span class="muted">{esc(label)}: no data yet</span>'
    top = max(max(seen), limit or 0.0) or 1.0
    path, pen = [], "M"
    for t, v in points:
        if math.isnan(v):
            pen = "M"
            continue
        x = (t - start) / HISTORY_SECONDS * SPARK_WIDTH
        y = SPARK_HEIGHT - 1 - v / top * (SPARK_HEIGHT - 2)
        path.append(f"{pen}{x:.1f} {y:.1f}")
        pen = "L"
    words = f"{label}, last 15 min: now {fmt(seen[-1])}, max {fmt(max(seen))}"
    line = ""
    if limit is not None:
        y = SPARK_HEIGHT - 1 - limit / top * (SPARK_HEIGHT - 2)
        line = f'<line class="limit" x1="0" x2="{SPARK_WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
    return (
        f'<figure style="margin:0"><figcaption class="muted">{esc(words)}</figcaption>'
        f'<svg role="img" aria-label="{esc(words)}" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
        f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}"><title>{esc(words)}</title>{line}'
        f'<path class="spark" d="{" ".join(path)}"/></svg></figure>'
    )


def _product_row(p: ProductStatus) -> str:
    if p.enabled is None:
        dcp = "unknown"
    else:
        dcp = "on" if p.enabled else "not enabled"
    window = f"{p.window:g} s" if p.window is not None else "–"
    desired = f"{p.desired:g} s" if p.desired is not None else "–"
    drift = "drift" if p.drift else "no" if p.desired is not None and p.enabled is not None else "–"
    guard = "armed" if p.guardian else "let go" if p.guardian is False else "subscribed" if p.subscribed else "–"
    cells = (p.product, dcp, window, desired, drift, p.reassert or "–", guard)
    # Each cell names its column too: on a narrow screen the rows stack and the header is hidden.
    first = f"<td>{esc(p.product)}</td>"
    rest = "".join(f'<td data-label="{label}">{esc(c)}</td>' for label, c in zip(COLUMNS[1:], cells[1:], strict=True))
    return f'<tr data-product="{esc(p.product)}">{first}{rest}</tr>'


COLUMNS = ("Product", "DCP", "Window", "Desired", "Drift", "Re-assert", "Guardian")


def _fact(label: str, value: str, key: str) -> str:
    return f'<div data-fact="{key}"><b>{esc(label)}</b>{esc(value)}</div>'


def account_html(a: AccountStatus, now: float) -> str:
    name = esc(a.account, quote=True)
    facts = [
        _fact("Last good poll", ago(now - a.last_poll) if a.last_poll else "never", "poll"),
        _fact("Last pong", ago(now - a.last_pong) if a.last_pong else "never", "pong"),
        _fact("Last error", f"{a.error_code} – {a.error_hint}" if a.error_code else "none", "error"),
        _fact(f"Reconnects, last {FLAPPING_MINUTES:g} min", f"{a.reconnects_flapping}", "reconnects"),
        _fact(
            f"RTT p50 / p90 / p99, last {RTT_MINUTES:g} min",
            f"{_ms(a.rtt_p50)} / {_ms(a.rtt_p90)} / {_ms(a.rtt_p99)}",
            "rtt",
        ),
        _fact("Account mode", a.account_mode or "not read yet", "account-mode"),
    ]
    if a.last_trigger_at:
        trigger = ago(now - a.last_trigger_at)
        t = a.last_trigger
        if t is not None and t.total:
            cats = ", ".join(f"{c} {n}" for c, n in sorted(t.orders.items()))
            trigger += f": {t.total} orders ({cats})"
    else:
        trigger = "none since start"
    facts.append(_fact("Last DCP trigger", trigger, "trigger"))
    links = [f'<a href="{esc(a.runbook_url, quote=True)}">Runbook</a>']
    if a.dashboard_url:
        links.insert(0, f'<a href="{esc(a.dashboard_url, quote=True)}">Grafana</a>')
    links.append(f'<a href="/?account={esc(_q(a.account), quote=True)}#events">Events</a>')
    gap = sparkline(a.times, a.gaps, now, "Largest ping gap", lambda v: f"{v:.1f} s", a.gap_limit)
    rtt = sparkline(a.times, a.rtts, now, "RTT", _ms)
    who = " · ".join(x for x in (a.environment, a.mode) if x)
    reasons = "".join(f'<li data-state="{r.state}">{esc(r.text)}</li>' for r in a.reasons)
    return (
        f'<article class="acct s-{a.state}" data-account="{name}" data-state="{a.state}">'
        f'<h2><span class="badge">{MARKS[a.state]} {a.state}</span> {esc(a.account)}'
        f' <span class="muted">{esc(who)}</span> <span class="muted">{" · ".join(links)}</span></h2>'
        f'<ul class="reasons">{reasons or "<li>all good: polls, stream and windows as desired</li>"}</ul>'
        f'<div class="facts">{"".join(facts)}</div>'
        '<div class="wrap"><table><thead><tr>'
        f"{''.join(f'<th>{c}</th>' for c in COLUMNS)}</tr></thead><tbody>"
        f"{''.join(_product_row(p) for p in a.products)}</tbody></table></div>"
        f'<div class="sparks">{gap}{rtt}</div></article>'
    )


def _q(account: str) -> str:
    return quote(account, safe="")


def event_html(e: Event, now: float) -> str:
    return (
        f'<li class="ev-{e.severity}" data-kind="{esc(e.kind)}" data-account="{esc(e.account, quote=True)}">'
        f'<time datetime="{_iso(e.at)}">{time.strftime("%H:%M:%S", time.gmtime(e.at))}</time> '
        f'<b>{esc(e.severity)}</b> <a href="/?account={esc(_q(e.account), quote=True)}#events">{esc(e.account)}</a>: '
        f'{esc(e.text)} <span class="muted">({ago(now - e.at)})</span></li>'
    )


def page(board: Board, telemetry_path: str) -> str:
    now = board.now
    counts = board.counts()
    summary = "".join(
        f'<span class="s-{s}"><span class="badge">{MARKS[s]} {counts[s]} {s}</span></span>' for s in STATES
    )
    ready = "ready" if board.ready else "starting (waiting for the first DCP poll of every account)"
    options = ['<option value="">all accounts</option>'] + [
        f'<option value="{esc(n, quote=True)}"{" selected" if n == board.selected else ""}>{esc(n)}</option>'
        for n in board.names
    ]
    scope = f" of {esc(board.selected)}" if board.selected else " across accounts"
    events = "".join(event_html(e, now) for e in board.events) or '<li class="muted">no events yet</li>'
    accounts = "".join(account_html(a, now) for a in board.accounts) or '<p class="muted">No account here.</p>'
    path = esc(telemetry_path, quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{NAME}</title><noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS * 3}"></noscript>
<style>{CSS}</style></head>
<body><header><h1>{NAME}</h1>
<p class="muted">Version {esc(__version__)} · {esc(ready)} · <a href="{path}">Metrics</a> ·
<a href="/api/v1/status">JSON</a> · <a href="/healthz">healthz</a> · <a href="/readyz">readyz</a></p></header>
<main id="board" data-refreshes="0">
<p class="counts" id="counts">{summary}<span class="muted">updated {esc(_utc(now))}</span></p>
<section id="accounts" aria-label="Accounts, worst first">{accounts}</section>
<section id="events"><h2>Events{scope}, newest first</h2>
<form method="get" action="/"><label>Account <select name="account">{"".join(options)}</select></label>
<button>Filter</button></form><ol>{events}</ol></section>
</main><script>{SCRIPT}</script></body></html>
"""
