"""The DCP drill against the simulator over loopback, one test per outcome, plus its pure verdict.

DCP timers run at 0.1x (Bybit's 10 s window lasts 1 s); a drill that must wait out the window
uses the shortest window (3 s x 0.1) and a short tolerance.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import pytest
from helpers import eventually, exporter_env, rest_client
from virtual_clock import VirtualClock, run_until

from exporter.bybit.observers import StreamLog
from exporter.bybit.rest import RestClient
from exporter.bybit.stream import PrivateStream, StreamConfig
from exporter.config import AccountConfig, DrillSettings
from exporter.drill import run, verdict
from exporter.drill.command import main as drill_main
from exporter.drill.run import run_drill
from exporter.drill.schedule import ScheduledDrill
from exporter.metrics import Metrics
from exporter.runtime.clock import SYSTEM_CLOCK
from exporter.secrets import Secret
from exporter.simulator import Simulator

KEY, SECRET = "drill-key-0001", "drill-secret-0001"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def sim():
    async with Simulator(time_scale=0.1) as s:
        s.add_account(KEY, SECRET)
        yield s


def account(sim: Simulator, **drill) -> AccountConfig:
    return AccountConfig(
        name="drill",
        api_key=KEY,
        api_secret=Secret(SECRET),
        environment="custom",
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        drill=DrillSettings(**drill) if drill else None,
    )


def drill_rest(sim, session, metrics: Metrics | None = None) -> RestClient:
    return rest_client(
        session, sim.rest_url, metrics if metrics is not None else Metrics(), KEY, SECRET, account="drill"
    )


async def drill(
    sim, session, progress=lambda text: None, ping_interval=run.PING_INTERVAL, clock=SYSTEM_CLOCK, **settings
):
    spec = DrillSettings(**{"tolerance": 1.0, **settings})
    rest = drill_rest(sim, session)
    report = verdict.DrillReport("drill", "custom", spec.product, "linear", spec.symbol, spec.cut, spec.tolerance)
    return await run_drill(
        account(sim),
        spec,
        rest,
        clock,
        report,
        link_id="dcp-drill-t",
        progress=progress,
        ping_interval=ping_interval,
    )


def canary(sim: Simulator, report: verdict.DrillReport) -> dict:
    return sim.account(KEY).orders[report.canary_order_id]


async def test_dcp_fires_in_time_and_only_the_canary_goes(sim, session):
    spot = sim.place_order(KEY, category="spot")  # another product: DCP for DERIVATIVES leaves it alone
    report = await drill(sim, session)
    assert report.outcome == verdict.PASSED and report.passed, report.message
    assert report.window_seconds == 10 and report.seen_on == "stream"
    assert 0.9 <= report.trigger_delay_seconds <= 2.0  # 10 s x 0.1, plus loopback latency
    assert report.other_orders_cancelled == []
    assert canary(sim, report)["cancelType"] == "CancelByDCP"
    assert canary(sim, report)["timeInForce"] == "PostOnly" and float(canary(sim, report)["price"]) < 65000
    assert sim.account(KEY).orders[spot["orderId"]]["orderStatus"] == "New"
    assert sim.account(KEY).set_dcp_calls == []  # never changes the window


async def test_a_silence_cut_fires_only_after_the_idle_cut_off(session):
    """``--cut silence``: the armed connection stays open and stops pinging; DCP counts it dead at
    the idle cut-off (here 1 s, pings every 0.2 s), then the window (1 s) runs. The drill and the
    simulator share a virtual clock: the windows are waited out in no wall time."""
    clock = VirtualClock()
    async with Simulator(time_scale=0.1, idle_cutoff=1.0, clock=clock) as sim:
        sim.add_account(KEY, SECRET)
        armed_at_cut: list = []

        def at_the_cut(text: str) -> None:
            if text.startswith("armed connection cut"):
                armed_at_cut.extend(c.conn_id for c in sim.connection_info() if "dcp.future" in c.topics)

        running = asyncio.create_task(
            drill(sim, session, progress=at_the_cut, ping_interval=0.2, clock=clock, cut="silence")
        )
        await run_until(clock, running.done, "the end of the drill", step=0.02)
        report = running.result()
    assert report.outcome == verdict.PASSED and report.passed, report.message
    assert report.cut == "silence" and report.seen_on == "stream" and len(armed_at_cut) == 1
    # Dead at the last ping + 1 s (>= 0.8 s after the cut), then the 1 s window: an abort fires after ~1 s.
    print(f"silence drill: DCP fired {report.trigger_delay_seconds} s after the cut")
    assert 1.7 <= report.trigger_delay_seconds <= 3.5
    assert canary(sim, report)["cancelType"] == "CancelByDCP"


async def test_never_fires_while_another_protected_connection_lives(sim, session):
    sim.set_dcp(KEY, "DERIVATIVES", 3)
    config = StreamConfig(sim.ws_url, KEY, Secret(SECRET), ("dcp.future",))
    bot = PrivateStream("bot", config, StreamLog("bot"), on_orders=lambda orders: None)
    holding = asyncio.create_task(bot.run())
    try:
        await eventually(lambda: bot.connected, what="the bot's dcp.future connection")
        report = await drill(sim, session, tolerance=0.5)
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
    assert report.outcome == verdict.NOT_FIRED and not report.passed
    assert "another dcp.* connection" in report.message
    assert report.canary_cleanup == "cancelled by the drill"
    assert canary(sim, report)["cancelType"] == "CancelByUser"


async def test_refuses_when_the_product_has_other_orders_and_cancels_the_canary(sim, session):
    other = sim.place_order(KEY, category="inverse", symbol="BTCUSD")
    report = await drill(sim, session)
    assert report.outcome == verdict.REFUSED and other["orderId"] in report.message
    assert "--allow-other-orders" in report.message
    assert report.cut_at is None and report.canary_cleanup == "cancelled by the drill"
    assert sim.account(KEY).orders[other["orderId"]]["orderStatus"] == "New"
    assert sim.account(KEY).triggers == []


async def test_with_other_orders_allowed_their_cancel_fails_the_drill(sim, session):
    other = sim.place_order(KEY, category="linear")
    report = await drill(sim, session, allow_other_orders=True)
    assert report.outcome == verdict.OTHERS_CANCELLED and report.other_orders_cancelled == [other["orderId"]]
    assert not report.passed


async def test_a_filled_canary_is_reported(sim, session):
    def fill_at_the_cut(text: str) -> None:
        if text.startswith("armed connection cut"):
            (order,) = sim.account(KEY).active_orders(("linear",))
            sim.fill_order(KEY, order["orderId"])

    report = await drill(sim, session, progress=fill_at_the_cut)
    assert report.outcome == verdict.FILLED and "price offset" in report.message
    assert report.canary_cleanup.startswith("gone (Filled)")


async def test_a_rejected_canary_is_reported_and_nothing_is_cut(sim, session):
    sim.force_error("/v5/order/create", 10001)
    report = await drill(sim, session)
    assert report.outcome == verdict.REJECTED and report.cut_at is None
    assert report.canary_order_id is None and sim.account(KEY).triggers == []


@pytest.mark.e2e  # a process of its own
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-closed"])
async def test_ctrl_c_mid_drill_cancels_the_canary(tmp_path, sig):
    async with Simulator(time_scale=1.0) as sim:  # a 10 s window: the drill is waiting when interrupted
        sim.add_account(KEY, SECRET)
        env = exporter_env(BYBIT_API_KEY=KEY, BYBIT_API_SECRET=SECRET, BYBIT_REST_URL=sim.rest_url)
        env["BYBIT_WS_URL"] = sim.ws_url
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from exporter.cli import main; sys.exit(main())",
            "drill",
            "--report",
            str(tmp_path / "report.json"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        while b"since the cut" not in await asyncio.wait_for(proc.stdout.readline(), 20):
            pass
        proc.send_signal(sig)
        out = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
        assert await proc.wait() == 130, out
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["outcome"] == "interrupted" and report["canary_cleanup"] == "cancelled by the drill"
        order = sim.account(KEY).orders[report["canary_order_id"]]
        assert order["orderStatus"] == "Cancelled" and order["cancelType"] == "CancelByUser"
        assert "DCP drill FAILED (interrupted)" in out and SECRET not in out + json.dumps(report)


def test_mainnet_is_refused_without_the_flag(monkeypatch, capsys):
    for name, value in exporter_env(BYBIT_API_KEY=KEY, BYBIT_API_SECRET=SECRET).items():
        monkeypatch.setenv(name, value)
    assert drill_main([]) == 1  # refused before any call: nothing reaches Bybit
    out = capsys.readouterr().out
    assert "refusing to drill on mainnet" in out and "--mainnet" in out


async def test_a_scheduled_drill_records_its_metrics(sim, session):
    metrics = Metrics()
    config = account(sim, every=3600.0, tolerance=1.0)
    rest = drill_rest(sim, session, metrics)
    report = await ScheduledDrill(config, rest, metrics).run_once()
    assert report.passed
    labels = {"account": "drill", "product": "DERIVATIVES"}
    assert metrics.registry.get_sample_value("bybit_dcp_drill_last_success", labels) == 1
    delay = metrics.registry.get_sample_value("bybit_dcp_drill_trigger_delay_seconds", labels)
    assert delay == report.trigger_delay_seconds
    await eventually(lambda: not sim.account(KEY).active_orders(), what="no order left behind")


# ------------------------------------------------------------------ the pure verdict


@pytest.mark.parametrize(
    ("last", "side", "expected"),
    [
        ("65000", "Buy", "32500"),
        ("65000", "Sell", "97500"),
        ("0.0012345", "Buy", "0.000617"),
        ("3456.7", "Sell", "5190"),
    ],
)
def test_the_canary_rests_away_from_the_market_at_a_round_price(last, side, expected):
    assert verdict.canary_price(last, side, 0.5) == expected


def test_a_silence_cut_counts_the_idle_cut_off_as_part_of_the_delay():
    report = verdict.DrillReport("a", "testnet", "DERIVATIVES", "linear", "BTCUSDT", "silence", 35.0, window_seconds=10)
    report.cut_at, report.cancelled_at, report.cancel_type = 100.0, 160.0, "CancelByDCP"  # 30 + 10 + a 20 s scan
    assert verdict.judge(report).outcome == verdict.PASSED and report.slack_seconds == 20.0
    report.cancelled_at = 176.0
    assert verdict.judge(report).outcome == verdict.LATE and "idle cut-off" in report.message


def test_a_cancel_after_window_plus_tolerance_is_late():
    report = verdict.DrillReport("a", "testnet", "DERIVATIVES", "linear", "BTCUSDT", "abort", 35.0, window_seconds=10)
    report.cut_at, report.cancelled_at, report.cancel_type = 100.0, 146.0, "CancelByDCP"
    assert verdict.judge(report).outcome == verdict.LATE and report.slack_seconds == 36.0


# ------------------------------------------------------------------ the report: checked before the cut, written whole


async def run_drill_command(sim: Simulator, *args: str, on_line=None) -> tuple[int, str, str]:
    env = exporter_env(BYBIT_API_KEY=KEY, BYBIT_API_SECRET=SECRET, BYBIT_REST_URL=sim.rest_url)
    env["BYBIT_WS_URL"] = sim.ws_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from exporter.cli import main; sys.exit(main())",
        "drill",
        "--tolerance",
        "1",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = []
    while line := (await asyncio.wait_for(proc.stdout.readline(), 30)).decode():
        out.append(line)
        if on_line is not None:
            on_line(line)
    err = (await asyncio.wait_for(proc.stderr.read(), 30)).decode()
    return await proc.wait(), "".join(out), err


@pytest.mark.e2e  # a process of its own
async def test_an_unwritable_report_path_is_refused_before_any_order(sim, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    status, out, err = await run_drill_command(sim, "--report", str(blocker / "report.json"))
    assert status == 2 and "--report" in err and "cannot write" in err, err
    assert sim.account(KEY).orders == {}  # nothing placed, nothing cut


@pytest.mark.e2e  # a process of its own
async def test_a_passed_drill_whose_report_cannot_be_written_exits_3_not_1(sim, tmp_path):
    directory = tmp_path / "reports"
    directory.mkdir()

    def remove_the_directory_at_the_cut(line: str) -> None:
        if "cut" in line and directory.exists():
            directory.rmdir()  # writable when checked, gone when the report is due

    status, out, err = await run_drill_command(
        sim, "--report", str(directory / "report.json"), on_line=remove_the_directory_at_the_cut
    )
    assert "DCP drill PASSED" in out, out
    assert status == 3 and "report could not be written" in err, (status, err)
    assert "Traceback" not in err


def test_the_report_replaces_the_old_one_whole_never_truncating_it(tmp_path):
    from exporter.drill.command import write_report

    report = tmp_path / "report.json"
    report.write_text('{"outcome": "old"}\n')
    kept = tmp_path / "yesterday.json"
    os.link(report, kept)  # another name for the old report's file
    write_report(str(report), '{"outcome": "passed"}\n')
    assert json.loads(report.read_text()) == {"outcome": "passed"}
    assert kept.read_text() == '{"outcome": "old"}\n'  # the old file was replaced, not rewritten in place
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".drill-report-")] == []


def test_exit_statuses_tell_a_failed_drill_from_a_lost_report():
    from exporter.drill.command import exit_status

    assert exit_status(passed=True, interrupted=False, report_written=True) == 0
    assert exit_status(passed=False, interrupted=False, report_written=True) == 1
    assert exit_status(passed=False, interrupted=False, report_written=False) == 1
    assert exit_status(passed=True, interrupted=False, report_written=False) == 3
    assert exit_status(passed=False, interrupted=True, report_written=False) == 130
