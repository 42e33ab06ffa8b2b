"""The web layer over loopback: landing page, telemetry, health and readiness."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from status_page import article, cells, fact, state, text

from exporter import __version__
from exporter.bybit.models import DcpSetting
from exporter.metrics import Metrics
from exporter.monitor.account import NOT_AVAILABLE, apply_dcp_info, set_poll_error
from exporter.web import make_app


class FakeState:
    def __init__(self, names):
        self.names = list(names)
        self.ready = False

    def account_names(self):
        return self.names


@pytest.fixture
async def served():
    metrics = Metrics(clock=lambda: 1000.0)
    state = FakeState(["desk-a", "<script>alert(1)</script>"])
    for name in state.names:
        metrics.add_account(name, environment="testnet", mode="observer", desired_windows={"SPOT": 10})
    runner = web.AppRunner(make_app(metrics, state, telemetry_path="/custom-metrics", clock=lambda: 1000.0))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with aiohttp.ClientSession() as session:
        yield base, session, metrics, state
    await runner.cleanup()


async def test_telemetry_is_parseable_with_zero_series(served):
    base, session, metrics, _ = served
    async with session.get(base + "/custom-metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["account"]: s.value for s in families["bybit_dcp_up"].samples}
    assert up == {"desk-a": 0.0, "<script>alert(1)</script>": 0.0}
    build = families["bybit_dcp_exporter_build_info"].samples[0]
    assert build.labels == {"version": __version__} and build.value == 1
    cancelled = [s for s in families["bybit_dcp_cancelled_orders"].samples if s.name.endswith("_total")]
    assert {s.labels["category"] for s in cancelled if s.labels["account"] == "desk-a"} == {
        "spot",
        "linear",
        "inverse",
        "option",
    }
    async with session.get(base + "/metrics") as resp:
        assert resp.status == 404  # only the configured path serves telemetry


async def test_openmetrics_negotiated(served):
    base, session, *_ = served
    async with session.get(base + "/custom-metrics", headers={"Accept": "application/openmetrics-text"}) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await resp.text()).rstrip().endswith("# EOF")


async def test_health_and_readiness(served):
    base, session, _, state = served
    async with session.get(base + "/healthz") as resp:
        assert resp.status == 200
    async with session.get(base + "/readyz") as resp:
        assert resp.status == 503
    state.ready = True
    async with session.get(base + "/readyz") as resp:
        assert resp.status == 200


async def test_status_board_shows_accounts_escaped(served):
    base, session, metrics, _ = served
    metrics.up.labels("desk-a").set(1)
    metrics.last_poll_success.labels("desk-a").set(990.0)
    metrics.ws_connected.labels("desk-a").set(1)
    metrics.ws_last_pong.labels("desk-a").set(997.5)
    apply_dcp_info(metrics, "desk-a", {"DERIVATIVES": DcpSetting("DERIVATIVES", "ON", 15)})
    metrics.ws_rtt.labels("desk-a").observe(0.050)
    metrics.ping_gap.set_source("desk-a", lambda: 997.5)
    metrics.last_trigger.labels("desk-a", "SPOT").set(100.0)
    metrics.triggers.labels("desk-a", "SPOT").inc()
    async with session.get(base + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert "bybit-dcp-exporter" in page and __version__ in page
    assert 'href="/custom-metrics"' in page and 'href="/api/v1/status"' in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    card = article(page, "desk-a")
    assert cells(card, "DERIVATIVES")[:3] == ["DERIVATIVES", "on", "15 s"]
    assert cells(card, "SPOT")[:4] == ["SPOT", "not enabled", "–", "10 s"]
    assert fact(card, "poll") == "10 s ago" and fact(card, "pong") == "2 s ago"
    assert fact(card, "rtt") == "38 ms / 50 ms"  # p50 / p99 within the 0.025-0.05 bucket
    assert fact(card, "trigger") == "15 min ago"
    # The hostile name is a card of its own, escaped, before any poll: unknown, worst first.
    assert page.index('data-account="&lt;script&gt;') < page.index('data-account="desk-a"')
    assert state(article(page, "<script>alert(1)</script>")) == "unknown"


async def test_status_board_says_unknown_not_off_and_why(served):
    base, session, metrics, _ = served

    async def card() -> str:
        async with session.get(base + "/") as resp:
            return article(await resp.text(), "desk-a")

    before = await card()  # before the first poll
    assert cells(before, "SPOT")[1:4] == ["unknown", "–", "10 s"] and "off" not in text(before)
    set_poll_error(metrics, "desk-a", "10004")
    failing = await card()
    assert state(failing) == "unknown" and cells(failing, "SPOT")[1] == "unknown"
    assert fact(failing, "error") == "10004 – signature refused: check the API secret (and that it belongs to this key)"
    metrics.up.labels("desk-a").set(1)
    set_poll_error(metrics, "desk-a", None)
    apply_dcp_info(metrics, "desk-a", {})  # polls fine, Bybit lists no product
    empty = await card()
    assert NOT_AVAILABLE in text(empty) and cells(empty, "SPOT")[1:4] == ["not enabled", "–", "10 s"]
    assert "10004" not in empty


async def test_status_json_and_account_filter(served):
    base, session, metrics, _ = served
    set_poll_error(metrics, "desk-a", "10003")
    async with session.get(base + "/api/v1/status", params={"account": "desk-a"}) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        body = await resp.json()
    assert [a["account"] for a in body["accounts"]] == ["desk-a"]
    desk = body["accounts"][0]
    assert desk["state"] == "unknown" and desk["last_error"]["code"] == "10003"
    assert "environment" in desk["last_error"]["hint"]
    assert [p["enabled"] for p in desk["products"]] == [None, None, None]  # unknown, never false
    async with session.get(base + "/", params={"account": "desk-a"}) as resp:
        page = await resp.text()
    assert 'data-account="desk-a"' in page and 'data-account="&lt;script&gt;' not in page.split('id="events"')[0]


def test_every_metric_is_documented():
    from pathlib import Path

    root = Path(__file__).parent.parent
    # README's metric table, or a table of the same shape in docs/ (as the manual moves there)
    doc = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    metrics = Metrics()
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"| `{name}` | {family.type} |" in doc, f"{name} is not in a metric table (README or docs/)"
