"""The web layer over loopback: landing page, telemetry, health and readiness."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

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


async def test_landing_page_shows_accounts_escaped(served):
    base, session, metrics, _ = served
    metrics.up.labels("desk-a").set(1)
    metrics.ws_connected.labels("desk-a").set(1)
    apply_dcp_info(metrics, "desk-a", {"DERIVATIVES": DcpSetting("DERIVATIVES", "ON", 15)})
    metrics.ws_rtt.labels("desk-a").observe(0.050)
    metrics.ping_gap.set_source("desk-a", lambda: 997.5)
    metrics.last_trigger.labels("desk-a", "SPOT").set(86400.0)
    metrics.triggers.labels("desk-a", "SPOT").inc()
    async with session.get(base + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert "bybit-dcp-exporter" in page and __version__ in page
    assert 'href="/custom-metrics"' in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    row = page.split("<tr><td>desk-a</td>")[1].split("</tr>")[0]
    assert "DERIVATIVES: 15 s" in row and "SPOT: off (desired 10 s)" in row
    assert "2.5 s" in row  # ping gap at render time
    assert "50.0 ms" in row  # RTT
    assert "1970-01-02 00:00:00 UTC (1 total)" in row


async def test_landing_page_says_unknown_not_off_and_why(served):
    base, session, metrics, _ = served

    async def row() -> str:
        async with session.get(base + "/") as resp:
            return (await resp.text()).split("<tr><td>desk-a</td>")[1].split("</tr>")[0]

    before = await row()  # before the first poll
    assert "SPOT: unknown (desired 10 s)" in before and "off" not in before
    set_poll_error(metrics, "desk-a", "10004")
    failing = await row()
    assert "no: 10004 – signature refused: check the API secret" in failing and "off" not in failing
    metrics.up.labels("desk-a").set(1)
    set_poll_error(metrics, "desk-a", None)
    apply_dcp_info(metrics, "desk-a", {})  # polls fine, Bybit lists no product
    empty = await row()
    assert NOT_AVAILABLE in empty and "SPOT: off (desired 10 s)" in empty and "10004" not in empty


def test_every_metric_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "README.md").read_text()
    metrics = Metrics()
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"| `{name}` | {family.type} |" in doc, f"{name} is not in README's metric table"
