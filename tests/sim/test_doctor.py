"""``bybit-dcp-exporter doctor``: each check against the simulator over loopback, each failure made
real (a wrong secret, a key of another environment, a skewed clock, a read-only key, empty or
Spot-only DCP, UTA 1.0, an expiring key), the verdicts' edges without I/O, and the command line's
JSON and exit codes as a real process. The doctor never writes to Bybit: every test that runs it
asserts that the simulator saw no write and no ``dcp.*`` subscription."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from helpers import ROOT, ShiftedClock, exporter_env, free_port

from exporter.bybit.models import DcpSetting
from exporter.config import AccountConfig, GuardianLiveness
from exporter.doctor import checks
from exporter.doctor.checks import FAILED, OK, WARNING, Answers, Failure, Line, StreamResult
from exporter.doctor.command import render
from exporter.doctor.run import diagnose
from exporter.secrets import Secret
from exporter.simulator import Simulator

KEY, SECRET = "doctor-key-0001", "doctor-secret-0001"
LOOPBACK = ["127.0.0.1"]


@pytest.fixture
async def sim():
    async with Simulator() as s:
        # A well set-up account: read-only key bound to this host, DCP on for both products.
        s.add_account(KEY, SECRET, name="desk", read_only=1, ips=LOOPBACK, expired_at="")
        yield s


def account(sim: Simulator, **overrides) -> AccountConfig:
    fields = dict(
        name="desk",
        api_key=KEY,
        api_secret=Secret(SECRET),
        environment="custom",
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
    )
    fields.update(overrides)
    return AccountConfig(**fields)  # type: ignore[arg-type]


def by_check(lines: list[Line]) -> dict[str, Line]:
    return {line.check: line for line in lines}


def said_skew(detail: str) -> float:
    """The skew the clock line states (a real request takes time, so a clock set 30 s off can read 29.998)."""
    match = re.search(r"Bybit's clock minus this host's: ([+-][0-9.]+) s", detail)
    assert match, detail
    return float(match.group(1))


def assert_read_only(sim: Simulator, key: str = KEY) -> None:
    """What the doctor may never do: write, or make itself one of the account's protected connections."""
    acct = sim.account(key)
    assert acct.writes() == []
    subscribed = [t for _, frame in acct.ws_frames if frame.get("op") == "subscribe" for t in frame.get("args", [])]
    assert not [t for t in subscribed if t.startswith("dcp")]
    assert not [t for t in acct.subscribed_topics() if t.startswith("dcp")]


async def doctor(sim: Simulator, *accounts: AccountConfig, **kw) -> list[Line]:
    return await diagnose(list(accounts) or [account(sim)], stream_timeout=10.0, **kw)


# ---- against the simulator -------------------------------------------------------------------


async def test_a_well_set_up_account_passes_every_check_without_writing(sim):
    lines = await doctor(sim)
    got = by_check(lines)
    assert [line.check for line in lines] == [
        "credentials",
        "clock",
        "key_permissions",
        "key_ips",
        "key_expiry",
        "dcp",
        "account_mode",
        "stream",
    ]
    assert {line.status for line in lines} == {OK}, render(lines)
    assert "read-only key" in got["key_permissions"].detail
    assert "127.0.0.1" in got["key_ips"].detail
    assert "UTA 2.0 (5)" in got["account_mode"].detail
    assert "order subscription acknowledged" in got["stream"].detail
    assert checks.exit_code(lines) == 0
    assert_read_only(sim)
    calls = {(c["method"], c["path"]) for c in sim.account(KEY).rest_calls}
    assert calls == {("GET", p) for p in ("/v5/user/query-api", "/v5/account/query-dcp-info", "/v5/account/info")}
    assert sim.account(KEY).subscribed_topics() == {"order"}


async def test_a_guardian_account_is_probed_with_order_only(sim):
    lines = await doctor(sim, account(sim, mode="guardian", guardian_products=("DERIVATIVES",)))
    assert by_check(lines)["dcp.DERIVATIVES"].status == OK
    assert_read_only(sim)
    assert sim.account(KEY).subscribed_topics() == {"order"}


async def test_a_wrong_secret_fails_the_credentials_and_stops_there(sim):
    lines = await doctor(sim, account(sim, api_secret=Secret("not-the-secret")))
    assert [(line.check, line.status) for line in lines] == [("credentials", FAILED), ("clock", OK)]
    assert "10004" in lines[0].detail and "API secret" in lines[0].hint
    assert "not-the-secret" not in json.dumps([line.to_dict() for line in lines])
    assert checks.exit_code(lines) == 2
    assert_read_only(sim)


async def test_a_key_of_another_environment_is_named_as_such():
    # The key lives on one "environment" (host); the configuration points at another.
    async with Simulator() as testnet, Simulator() as mainnet:
        testnet.add_account(KEY, SECRET)
        mainnet.add_account("someone-else", "other")
        lines = await doctor(mainnet, account(mainnet, environment="custom"))
        credentials = by_check(lines)["credentials"]
        assert credentials.status == FAILED
        assert "key and host environments differ: mainnet/testnet/demo" in credentials.detail
        assert "10003" in credentials.detail
        assert testnet.account(KEY).rest_calls == []


async def test_a_host_not_bound_to_the_key_fails_the_credentials(sim):
    sim.set_key(KEY, ips=["203.0.113.7"])
    lines = await doctor(sim)
    assert by_check(lines)["credentials"].status == FAILED
    assert "10010" in by_check(lines)["credentials"].detail
    assert "egress IP" in by_check(lines)["credentials"].hint


async def test_a_host_clock_ahead_of_bybit_warns_and_the_calls_still_work(sim):
    ahead = ShiftedClock(lambda: time.time() + 30.0)
    lines = await doctor(sim, clock=ahead)
    got = by_check(lines)
    assert got["clock"].status == WARNING
    assert said_skew(got["clock"].detail) == pytest.approx(-30.0, abs=0.5) and "ahead" in got["clock"].detail
    assert "retried on Bybit's time" in got["clock"].detail
    assert got["credentials"].status == OK  # the client re-signs on Bybit's time after 10002
    assert got["stream"].status == OK  # an auth that expires later is still in the future
    codes = [c["ret_code"] for c in sim.account(KEY).rest_calls]
    assert 10002 in codes


async def test_a_host_clock_behind_bybit_fails_and_so_does_the_stream_auth(sim):
    behind = ShiftedClock(lambda: time.time() - 30.0)
    lines = await doctor(sim, clock=behind)
    got = by_check(lines)
    assert got["clock"].status == FAILED
    assert said_skew(got["clock"].detail) == pytest.approx(30.0, abs=0.5) and "NTP" in got["clock"].hint
    assert got["stream"].status == FAILED and "auth_failed" in got["stream"].detail
    assert_read_only(sim)


async def test_a_read_only_key_cannot_enforce_the_window(sim):
    enforce = account(sim, desired_windows={"DERIVATIVES": 10}, reassert="enforce")
    lines = await doctor(sim, enforce)
    got = by_check(lines)
    assert got["key_permissions"].status == FAILED
    assert "reassert: enforce cannot work" in got["key_permissions"].detail
    assert "reassert: dry-run" in got["key_permissions"].hint
    assert got["dcp.DERIVATIVES"].status == OK
    assert_read_only(sim)
    # The same key with write access passes: the simulator takes the write it would refuse above.
    sim.set_key(KEY, read_only=0)
    assert by_check(await doctor(sim, enforce))["key_permissions"].status == OK


async def test_a_trade_key_that_nothing_writes_with_warns(sim):
    sim.set_key(KEY, read_only=0)
    got = by_check(await doctor(sim))
    assert got["key_permissions"].status == WARNING
    assert "use a read-only key" in got["key_permissions"].hint


async def test_an_empty_dcp_answer_says_ask_the_account_manager(sim):
    sim.add_account("no-dcp", "no-dcp-secret", dcp={}, read_only=1, ips=LOOPBACK, expired_at="")
    lines = await doctor(sim, account(sim, api_key="no-dcp", api_secret=Secret("no-dcp-secret")))
    dcp = by_check(lines)["dcp"]
    assert dcp.status == FAILED
    assert "empty dcpInfos" in dcp.detail
    assert "ask your account manager; DCP is for institutional accounts" in dcp.hint
    assert checks.exit_code(lines) == 2
    assert_read_only(sim, "no-dcp")


async def test_spot_only_dcp_warns_and_fails_a_wanted_derivatives_window(sim):
    sim.add_account("spot", "spot-secret", dcp={"SPOT": 10}, read_only=1, ips=LOOPBACK, expired_at="")
    spot = account(sim, api_key="spot", api_secret=Secret("spot-secret"))
    got = by_check(await doctor(sim, spot))
    assert got["dcp"].status == WARNING
    assert (
        "SPOT only" in got["dcp"].detail and "linear, inverse and option orders are not protected" in got["dcp"].detail
    )
    got = by_check(await doctor(sim, replace(spot, desired_windows={"DERIVATIVES": 10, "SPOT": 10})))
    assert got["dcp.DERIVATIVES"].status == FAILED
    assert "lists no DCP for DERIVATIVES" in got["dcp.DERIVATIVES"].detail
    assert got["dcp.SPOT"].status == OK
    assert_read_only(sim, "spot")


async def test_a_drifted_window_warns(sim):
    sim.set_dcp(KEY, "SPOT", 30)
    got = by_check(await doctor(sim, account(sim, desired_windows={"SPOT": 10})))
    assert got["dcp.SPOT"].status == WARNING
    assert "30 s" in got["dcp.SPOT"].detail and "10 s" in got["dcp.SPOT"].detail


async def test_uta_1_warns_that_inverse_orders_are_not_protected(sim):
    sim.set_account_mode(KEY, 3)
    got = by_check(await doctor(sim))
    assert got["account_mode"].status == WARNING
    assert "UTA 1.0 (3)" in got["account_mode"].detail
    assert "inverse orders are not protected by DCP" in got["account_mode"].detail
    sim.set_account_mode(KEY, 6)
    assert by_check(await doctor(sim))["account_mode"].status == OK


async def test_a_key_expiring_soon_warns_and_an_expired_one_fails(sim):
    soon = datetime.fromtimestamp(time.time() + 5 * 86400, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sim.set_key(KEY, expired_at=soon)
    got = by_check(await doctor(sim))
    assert got["key_expiry"].status == WARNING
    assert "expires in 5." in got["key_expiry"].detail or "expires in 4.9" in got["key_expiry"].detail
    sim.set_key(KEY, expired_at="2020-01-01T00:00:00Z")
    assert by_check(await doctor(sim))["key_expiry"].status == FAILED


async def test_a_refused_stream_fails_the_stream_check(sim):
    sim.refuse_streams(KEY)
    got = by_check(await doctor(sim))
    assert got["stream"].status == FAILED and "auth_failed" in got["stream"].detail
    assert got["credentials"].status == OK


# ---- the verdicts without I/O ----------------------------------------------------------------


def plain(**overrides) -> AccountConfig:
    fields = dict(name="a", api_key="k", api_secret=Secret("s"), environment="testnet")
    fields.update(overrides)
    return AccountConfig(**fields)  # type: ignore[arg-type]


KEY_INFO = {"readOnly": 1, "permissions": {}, "ips": ["10.0.0.1"], "expiredAt": ""}
BOTH = {p: DcpSetting(p, "ON", 10) for p in ("SPOT", "DERIVATIVES")}


def test_the_expiry_warning_starts_fourteen_days_ahead():
    now = datetime(2027, 1, 1, tzinfo=UTC).timestamp()

    def expiry(days: float) -> str:
        info = {**KEY_INFO, "expiredAt": datetime.fromtimestamp(now + days * 86400, UTC).isoformat()}
        return by_check(checks.key_lines(plain(), info, now))["key_expiry"].status

    assert (expiry(14.5), expiry(14.0), expiry(0.5), expiry(-0.1)) == (OK, WARNING, WARNING, FAILED)


def test_an_unbound_key_that_can_write_warns_and_withdraw_is_called_out():
    writer = {**KEY_INFO, "readOnly": 0, "ips": ["*"], "permissions": {"Wallet": ["Withdraw"]}}
    got = by_check(checks.key_lines(plain(), writer, 0.0))
    assert got["key_ips"].status == WARNING and "no IP restriction" in got["key_ips"].detail
    assert got["key_permissions"].status == WARNING and "withdraw" in got["key_permissions"].detail


def test_uta_1_without_derivatives_dcp_is_ok_and_unknown_modes_warn():
    spot = {"SPOT": DcpSetting("SPOT", "ON", 10)}
    assert checks.account_mode(plain(), {"unifiedMarginStatus": 4}, spot)[0].status == OK
    assert checks.account_mode(plain(), {"unifiedMarginStatus": 4}, BOTH)[0].status == WARNING
    assert checks.account_mode(plain(), {"unifiedMarginStatus": 1}, BOTH)[0].status == WARNING
    assert checks.account_mode(plain(), {"unifiedMarginStatus": 2}, BOTH)[0].status == WARNING
    assert checks.account_mode(plain(), {"unifiedMarginStatus": 5}, BOTH)[0].status == OK


def test_demo_has_no_dcp():
    lines = checks.dcp_lines(plain(environment="demo"), {})
    assert [(line.check, line.status) for line in lines] == [("dcp", FAILED)]
    assert "demo" in lines[0].detail


def test_the_connection_budget_counts_accounts_per_host_and_guardian_connections():
    liveness = GuardianLiveness(source="file", timeout=60.0, path="/tmp/x")
    accounts = [plain(name=f"a{i}") for i in range(498)] + [
        plain(name="g", mode="guardian", guardian_products=("DERIVATIVES",), guardian_liveness=liveness)
    ]
    (line,) = checks.connection_budget(accounts)
    assert line.status == OK and "501 private connection(s)" not in line.detail and "500 private" in line.detail
    (line,) = checks.connection_budget([*accounts, plain(name="one-more")])
    assert line.status == WARNING and "501 private connection(s)" in line.detail and "305 s" in line.detail
    (line,) = checks.connection_budget(accounts[:400], share=0.6)
    assert line.status == WARNING and "uses 300 of them" in line.detail
    lines = checks.connection_budget([plain(name="m", environment="mainnet", ws_url="wss://stream.bybit.com/v5/private"),
                                      plain(name="t", ws_url="wss://stream-testnet.bybit.com/v5/private")])  # fmt: skip
    assert [line.account for line in lines] == [checks.ALL_ACCOUNTS] * 2


def test_exit_codes_follow_the_worst_line():
    def line(status: str) -> Line:
        return Line("a", "x", status, "")

    assert checks.exit_code([line(OK)]) == 0
    assert checks.exit_code([line(OK), line(WARNING)]) == 1
    assert checks.exit_code([line(WARNING), line(FAILED), line(OK)]) == 2


def test_refused_credentials_leave_out_the_checks_that_need_a_signed_answer():
    answers = Answers(skew=0.0, key=Failure("10003"), stream=StreamResult())
    assert [line.check for line in checks.account_lines(plain(), answers, 0.0)] == ["credentials", "clock"]
    answers = Answers(skew=0.0, key=Failure("10005"), dcp=BOTH, account={"unifiedMarginStatus": 5})
    got = by_check(checks.account_lines(plain(), answers, 0.0))
    assert "dcp" in got and got["credentials"].status == WARNING  # the key is known; it may not read itself


# ---- the command line, as a process ----------------------------------------------------------


async def run_doctor(sim: Simulator, *args: str, **env: str) -> tuple[int, str, str]:
    """``bybit-dcp-exporter doctor`` as a subprocess, with the quick start's BYBIT_* variables."""
    quick_start = {
        "BYBIT_API_KEY": KEY,
        "BYBIT_API_SECRET": SECRET,
        "BYBIT_ACCOUNT": "desk",
        "BYBIT_REST_URL": sim.rest_url,
        "BYBIT_WS_URL": sim.ws_url,
    }
    environment = exporter_env(**{**quick_start, **env})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter.cli",
        "doctor",
        "--stream-timeout",
        "10",
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.e2e  # a process of its own
async def test_the_command_prints_json_with_stable_keys_and_exits_by_the_worst_line(sim):
    code, out, err = await run_doctor(sim, "--json")
    assert code == 0, out + err
    lines = json.loads(out)
    assert all(set(line) == {"account", "check", "status", "detail", "hint"} for line in lines)
    assert [(line["account"], line["check"]) for line in lines][-1] == ("*", "connection_budget")
    assert {line["account"] for line in lines[:-1]} == {"desk"}
    assert {line["status"] for line in lines} == {"ok"}
    assert SECRET not in out + err

    sim.set_account_mode(KEY, 3)  # UTA 1.0 with DERIVATIVES DCP: a warning
    code, out, _ = await run_doctor(sim, "--json")
    assert code == 1
    assert {(line["check"], line["status"]) for line in json.loads(out)} >= {("account_mode", "warning")}

    code, out, err = await run_doctor(sim, BYBIT_API_SECRET="wrong-secret-123")
    assert code == 2
    assert "failed " in out and "credentials: signature refused (10004)" in out
    assert "-> " in out  # the hint under a failed line
    assert "wrong-secret-123" not in out + err
    assert_read_only(sim)


@pytest.mark.e2e  # a process of its own
async def test_the_command_refuses_an_unknown_account_with_exit_code_2(sim, tmp_path):
    code, _, err = await run_doctor(sim, "--account", "nobody")
    assert code == 2 and "no account named 'nobody'" in err


async def test_an_unreachable_bybit_fails_the_credentials_and_stops_there(sim):
    nowhere = f"http://127.0.0.1:{free_port()}"
    lines = await doctor(sim, account(sim, rest_url=nowhere, ws_url=nowhere.replace("http", "ws") + "/v5/private"))
    assert [(line.check, line.status) for line in lines] == [("credentials", FAILED), ("clock", FAILED)]
    assert "network" in lines[0].detail and "DNS, proxy and firewall" in lines[0].hint


async def test_a_refused_account_info_warns_and_says_what_the_key_knows(sim):
    sim.force_error("/v5/account/info", 10016, None)
    got = by_check(await doctor(sim))
    assert got["account_mode"].status == WARNING
    assert "10016" in got["account_mode"].detail and "unified account (uta 1)" in got["account_mode"].detail
