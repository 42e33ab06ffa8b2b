"""The status board in a real browser: Debian's chromium, headless, renders it against the simulator.

Each state is made in the simulator (healthy, poll failing with 10003, stream stalled, after a
DCP trigger, drift being re-asserted); the tests assert on the DOM chromium built
(``--dump-dom``, after the page's own script ran) and keep a screenshot of each state in
``test-artifacts/status-page/``. Chromium is required: without it the tests fail.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from contextlib import asynccontextmanager

import pytest
from account_harness import KEY, TIME_SCALE, account, protected_client
from aiohttp import web
from helpers import ROOT, eventually
from status_page import article, cells, fact, state, text

from exporter.config import Config
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.simulator import Simulator
from exporter.status.model import Links
from exporter.status.service import StatusService
from exporter.web.app import make_app

ARTEFACTS = ROOT / "test-artifacts" / "status-page"
DCP_INFO = "/v5/account/query-dcp-info"
SET_DCP = "/v5/order/disconnected-cancel-all"
GRAFANA = "http://grafana.invalid/d/bybit-dcp/bybit-dcp"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: scripts/test installs it (or says how)")
    return path


async def browse(url: str, *flags: str) -> str:
    """Run chromium once on ``url`` with ``flags``; its standard output."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *flags,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out.decode()


async def render(url: str, name: str, width: int = 1280) -> str:
    """The DOM chromium built for ``url``; a screenshot of it is kept as ``<name>.png``."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    dom = await browse(url, "--dump-dom")
    await browse(url, f"--screenshot={shot}", f"--window-size={width},1100", "--hide-scrollbars")
    assert shot.stat().st_size > 10_000  # a page was drawn, not a blank
    return dom


@pytest.fixture
async def sim():
    async with Simulator(time_scale=TIME_SCALE) as s:
        s.add_account(KEY)
        yield s


@asynccontextmanager
async def board(sim: Simulator, **overrides):
    """The exporter on one simulated account, its board sampled every 0.1 s; yields (url, metrics, status)."""
    metrics = Metrics()
    fleet = Fleet(Config(accounts=[account(sim, **overrides)]), metrics)
    status = StatusService(metrics, interval=0.1, links=Links(GRAFANA))
    app = make_app(metrics, fleet, status=status)
    app.router.add_get("/__width__", width_probe)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    await fleet.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/", metrics, status
    finally:
        await fleet.stop()
        await runner.cleanup()


# The board in a frame ``width`` CSS pixels wide (and tall enough for no vertical scroll bar);
# once it has loaded, the frame's document's scrollWidth, and by how much the widest product
# table overflows its box (it would scroll sideways inside it), are written on the probe's body. Served
# from the exporter's own origin, so the probe may read the frame.
WIDTH_PROBE = """<!doctype html><html><body style="margin:0">
<iframe id="f" src="/" style="border:0;width:%dpx;height:9000px"></iframe>
<script>f.onload=()=>{const d=f.contentDocument.documentElement;
const inner=[...d.querySelectorAll(".wrap")].map(w=>w.scrollWidth-w.clientWidth);
document.body.dataset.scrollWidth=d.scrollWidth;document.body.dataset.clientWidth=d.clientWidth;
document.body.dataset.tableOverflow=Math.max(0,...inner);document.body.dataset.tables=inner.length;};</script>
</body></html>"""


async def width_probe(request: web.Request) -> web.Response:
    return web.Response(text=WIDTH_PROBE % int(request.query["width"]), content_type="text/html")


async def scroll_width(url: str, width: int) -> tuple[int, int, int]:
    """The board laid out ``width`` CSS pixels wide: its document's scrollWidth and clientWidth,
    and the most any product table overflows its box."""
    dom = await browse(f"{url}__width__?width={width}", "--virtual-time-budget=5000", "--dump-dom")
    found = re.search(
        r'data-scroll-width="(\d+)" data-client-width="(\d+)" data-table-overflow="(\d+)" '
        r'data-tables="([1-9]\d*)"',
        dom,
    )
    assert found, "the probe did not measure the frame and its tables"
    return int(found.group(1)), int(found.group(2)), int(found.group(3))


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"account": "a", **labels})


def events(dom: str) -> list[tuple[str, str]]:
    """(kind, text) of each event on the timeline, newest first."""
    timeline = dom.split('id="events"')[1]
    return [(k, text(t)) for k, t in re.findall(r'<li class="ev-\w+" data-kind="(\w+)"[^>]*>(.*?)</li>', timeline)]


def sampled(status: StatusService, kind: str):
    return lambda: any(e.kind == kind for e in status.sampler.events())


async def test_healthy_account_is_ok_with_sparklines_links_and_live_refresh(sim):
    async with board(sim) as (url, metrics, status):
        await eventually(lambda: (value(metrics, "bybit_dcp_ws_ping_rtt_seconds_count") or 0) >= 3, what="pongs")
        await eventually(lambda: value(metrics, "bybit_dcp_up") == 1, what="a good poll")
        dom = await render(url, "healthy")
        card = article(dom, "a")
        assert state(card) == "ok" and "✔ ok" in card
        assert cells(card, "DERIVATIVES")[:3] == ["DERIVATIVES", "on", "10 s"]
        assert cells(card, "OPTIONS")[:2] == ["OPTIONS", "not enabled"]
        assert re.fullmatch(r"\d+ s ago", fact(card, "poll")) and re.fullmatch(r"\d+ s ago", fact(card, "pong"))
        assert re.fullmatch(r"[\d.]+ ms / [\d.]+ ms / [\d.]+ ms", fact(card, "rtt"))
        assert fact(card, "error") == "none" and fact(card, "trigger") == "none since start"
        assert card.count('<svg role="img"') == 2  # ping gap and RTT, drawn on the server
        assert f'href="{GRAFANA}?var-account=a"' in card and "alerts/runbook.md" in card
        assert KEY not in dom and sim.account(KEY).api_secret not in dom
        # The page's script refreshes the board in place (virtual time runs its timer).
        refreshed = await browse(url, "--virtual-time-budget=25000", "--dump-dom")
        assert int(re.search(r'id="board" data-refreshes="(\d+)"', refreshed).group(1)) >= 1
        assert state(article(refreshed, "a")) == "ok"
        await render(url, "healthy-phone", width=390)


async def test_poll_failing_with_10003_is_unknown_with_the_hint(sim):
    sim.force_error(DCP_INFO, 10003, count=None)
    async with board(sim) as (url, metrics, status):
        await eventually(sampled(status, "poll_error"), what="the poll error sampled")
        dom = await render(url, "poll-failing-10003")
        card = article(dom, "a")
        assert state(card) == "unknown" and "? unknown" in card
        assert fact(card, "error") == "10003 – API key unknown on this environment: check the key and testnet/mainnet"
        assert [cells(card, p)[1] for p in ("SPOT", "DERIVATIVES", "OPTIONS")] == ["unknown"] * 3
        assert "off" not in text(card) and fact(card, "poll") == "never"
        assert "#bybitdcpconfigpollfailing" in card  # the runbook entry for what is wrong
        told = "DCP poll failing: 10003 – API key unknown on this environment"
        assert any(k == "poll_error" and told in t for k, t in events(dom))


async def test_stalled_stream_is_down_with_its_reconnects(sim):
    async with board(sim, ping_interval=0.3, pong_timeout=0.25) as (url, metrics, status):
        await eventually(lambda: value(metrics, "bybit_dcp_ws_ping_rtt_seconds_count"), what="a pong")
        sim.stall(KEY)  # the connection goes silent...
        sim.drop_pongs(KEY)  # ...and so does every new one
        await eventually(lambda: (value(metrics, "bybit_dcp_ws_ping_gap_seconds") or 0) > 1.5, what="a long gap")
        await eventually(
            lambda: any("no pong in time" in e.text for e in status.sampler.events()), what="a sampled pong timeout"
        )
        dom = await render(url, "stream-stalled")
        card = article(dom, "a")
        assert state(card) == "down" and "✖ down" in card
        reasons = text(card.split('class="reasons"')[1].split("</ul>")[0])
        assert "no pong for" in reasons or "stream disconnected" in reasons
        assert int(fact(card, "reconnects")) >= 1
        assert '<line class="limit"' in card  # the gap's limit (ping interval + pong timeout) on the sparkline
        kinds = {k for k, t in events(dom) if "no pong in time" in t}
        assert kinds & {"stream_down", "stream_reconnected"}


async def test_after_a_trigger_the_orders_and_categories_are_told(sim):
    async with board(sim) as (url, metrics, status):
        await eventually(lambda: value(metrics, "bybit_dcp_ws_connected") == 1, what="the stream")
        for _ in range(3):
            sim.place_order(KEY, category="linear")
        sim.place_order(KEY, category="inverse")
        async with protected_client(sim, KEY, "dcp.future"):
            pass  # the bot dies: DCP fires after the window
        await eventually(
            lambda: (
                status.sampler.view("a", 0) is not None
                and (t := status.sampler.view("a", 0).watch.last_trigger) is not None
                and t.total == 4
            ),
            what="the trigger and its 4 orders sampled",
        )
        dom = await render(url, "after-trigger")
        card = article(dom, "a")
        assert state(card) == "down"
        assert re.search(r"DCP fired \d+ s ago: 4 orders cancelled", text(card))
        assert re.fullmatch(r"\d+ s ago: 4 orders \(inverse 1, linear 3\)", fact(card, "trigger"))
        assert "#bybitdcptriggered" in card
        # One time base: the timeline dates the trigger by Bybit's time, as the card and the metric do.
        fired = value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES")
        dated = re.findall(r'data-kind="trigger"[^>]*><time datetime="([^"]+)"', dom.split('id="events"')[1])
        assert dated and dated[-1] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fired))
        triggers = [t for k, t in events(dom) if k == "trigger"]
        assert any("DCP fired on DERIVATIVES: 4 orders cancelled (inverse 1, linear 3)" in t for t in triggers)


async def test_drift_being_reasserted_then_put_back(sim):
    config = dict(desired_windows={"SPOT": 10}, reassert="enforce", settle_seconds=0.2)
    sim.force_error(SET_DCP, 10016, count=None)  # Bybit refuses the set for now
    async with board(sim, **config) as (url, metrics, status):
        await eventually(lambda: value(metrics, "bybit_dcp_up") == 1, what="a good poll")
        sim.set_dcp(KEY, "SPOT", 30)  # behind the exporter's back
        await eventually(lambda: value(metrics, "bybit_dcp_reassert_failures_total", product="SPOT"), what="a failure")
        await eventually(sampled(status, "reassert_failed"), what="the failure sampled")
        dom = await render(url, "drift-reasserting")
        await render(url, "drift-reasserting-400px", width=400)
        # The longest cells (re-asserting: n sent, n failed) on a 400 px phone: nothing scrolls sideways.
        wide, client, table = await scroll_width(url, 400)
        assert client == 400 and wide <= 400, f"the page is {wide} px wide at 400 px"
        assert table == 0, f"the product table is {table} px too wide for its box"
        card = article(dom, "a")
        assert state(card) == "degraded" and "! degraded" in card
        spot = cells(card, "SPOT")
        assert spot[:5] == ["SPOT", "on", "30 s", "10 s", "drift"] and spot[5].startswith("re-asserting: ")
        assert "SPOT window drift: Bybit 30 s, desired 10 s" in text(card)
        told = "SPOT window drift: Bybit reports 30 s, desired 10 s"
        assert any(k == "drift" and told in t for k, t in events(dom))

        sim.clear_errors()  # the next try goes through and is verified
        await eventually(sampled(status, "reasserted"), timeout=15, what="the re-assertion sampled")
        dom = await render(url, "drift-reasserted")
        card = article(dom, "a")
        assert state(card) == "ok"
        assert cells(card, "SPOT")[:5] == ["SPOT", "on", "10 s", "10 s", "no"]
        assert re.fullmatch(r"re-asserted \d+ s ago", cells(card, "SPOT")[5])
        assert any(k == "reasserted" and "SPOT window re-asserted to 10 s and verified" in t for k, t in events(dom))
