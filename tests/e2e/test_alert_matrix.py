"""Every alert of the mixin, proven end to end: an incident made in the simulator drives a real
exporter, a real Prometheus with the rules and a real Alertmanager; each alert goes pending
(where it has a `for`), fires, reaches the webhook receiver of its severity with its labels and
annotations, and resolves after the incident clears.

All incidents run at once, one account each, on 127.0.0.1:
  exporter A (one account per incident), exporter B (re-assertion blocked: its fix is a restart),
  exporter E (re-assertion contended by another writer, played by the test: its fix is a restart too),
  exporter C (the one that goes down), exporter D (its process is stopped and continued in turn,
  so its event loop wakes late), all scraped by one Prometheus; a second Prometheus whose
  only target appears late (BybitDcpExporterAbsent: no exporter at all); one Alertmanager with
  alerts/alertmanager.yml and a webhook receiver in this process.
A simulator per fault that applies to every key of a simulator (a forced REST error, a hang, a
rate limit, a skewed clock); the other incidents share one. DCP timers run at 0.1x.

The rules are the mixin's with TEST_CONFIG: `for` 2 s, `keep_firing_for` 2 s and short ranges;
every threshold as shipped except the stale-poll age. The measured times are printed and written
to test-artifacts/alert-matrix.md (docs/observability.md has the table).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
import yaml
from alert_stack import (
    JOB,
    Receiver,
    alert_rules,
    alertmanager_config,
    am_ready,
    prometheus_alerts,
    prometheus_query,
    short_for,
    start_alertmanager,
    start_prometheus,
    write_rules,
)
from exporter_process import ExporterProcesses
from helpers import ROOT, ShiftedClock, eventually, free_port, stop_process

from exporter.simulator import Simulator
from exporter.simulator.scenario import protected_session

TEST_CONFIG = {
    **short_for("2s"),
    "keepFiringFor": {name: "2s" for name in alert_rules()},
    "configStaleSeconds": "2",
    "reconnectFlappingWindow": "20s",
    "heartbeatRttWindow": "10s",
    "triggerNewFor": "5s",
    "reassertedRecentSeconds": "5",
    "eventLoopLagWindow": "10s",
    "clockSkewRefusedWindow": "10s",
}
RULES = alert_rules(TEST_CONFIG)
RECEIVER_OF = {"critical": "page", "warning": "ticket", "info": "chat"}
DCP_INFO, SET_DCP, CREATE = "/v5/account/query-dcp-info", "/v5/order/disconnected-cancel-all", "/v5/order/create"
TOKEN = "matrix-bot-token-0001"
# Simulators of their own: their fault applies to every key on them.
OWN_SIMULATOR = ("poll", "stale", "failing", "blocked", "skew", "refused", "ratelimit", "drill")
ENFORCE = {"desired_windows": {"SPOT": 10}, "reassert": "enforce", "settle_seconds": 1, "allow_short_settle": True}
GUARDIAN = {
    "mode": "guardian",
    "guardian_products": ["DERIVATIVES"],
    "guardian_liveness": {"http": {"token_env": "BOT_TOKEN"}, "timeout": 1},
}
# Exporter A's accounts: name -> settings beyond the common ones.
ACCOUNTS_A = {
    "poll": {},
    "stale": {},
    "not-enabled": {"desired_windows": {"SPOT": 10}},
    "drift": {"desired_windows": {"SPOT": 10}},
    "late": {},  # 30 s windows: the warning fires well before the critical one would
    "silent": {},
    "disconnected": {},
    "flapping": {},
    "slow": {"pong_timeout": 0.9},  # pongs 0.7 s late are still in time
    "trigger": {},
    "reasserted": ENFORCE,
    "failing": ENFORCE,
    "skew": {},
    "refused": {},  # Bybit's clock jumps two days: every reading of it is refused
    "ratelimit": {"poll_interval": 1.5},  # one poll per rate-limit second
    "drill": {"drill": {"every": 3, "tolerance": 1}},
    "let-go": GUARDIAN,
    "never-armed": GUARDIAN,
    "uta1": {},  # UTA 1.0 from the start (the mode is read at start, then every 5 minutes)
}
ACCOUNT_MODE = {"uta1": 3}
pytestmark = pytest.mark.timeout(300)


def key(account: str) -> str:
    return f"matrix-{account}-key-0001"


def secret_env(account: str) -> str:
    return "SECRET_" + account.upper().replace("-", "_")


def exporter_config(accounts: dict[str, dict], sims: dict[str, Simulator]) -> dict:
    def one(name: str, extra: dict) -> dict:
        sim = sims.get(name, sims["shared"])
        common = {"rest_url": sim.rest_url, "ws_url": sim.ws_url, "ping_interval": 1, "pong_timeout": 0.5}
        return {
            "name": name,
            "api_key": key(name),
            "api_secret_env": secret_env(name),
            **common,
            "poll_interval": 1,
        } | extra

    return {"accounts": [one(name, extra) for name, extra in accounts.items()]}


@dataclass
class Incident:
    """What is done to one account to make ``alert`` fire, and what undoes it.

    ``start`` makes the incident; ``clear`` ends it (for an incident that ends by itself,
    it waits for that end). ``labels`` pick the alert (besides alertname and account).
    """

    alert: str
    account: str | None
    what: str
    start: Callable[[], Awaitable[object]]
    clear: Callable[[], Awaitable[object]]
    labels: dict[str, str] = field(default_factory=dict)
    in_description: str = ""


@dataclass
class Measured:
    alert: str
    what: str
    pending_seen: bool
    fire: float
    resolve: float


async def _nothing() -> None:
    return None


class Tracker:
    """Polls every Prometheus for its alerts and keeps the states each (alert, account) showed.

    A poll can miss a pending state shorter than a stall of this test's loop on a busy machine,
    so :meth:`was_pending` also asks each Prometheus for the ``ALERTS`` series it writes at every
    evaluation."""

    def __init__(self, session: aiohttp.ClientSession, urls: list[str]) -> None:
        self.session, self.urls = session, urls
        self.states: dict[tuple[str, str], set[str]] = {}

    async def run(self) -> None:
        while True:
            for url in self.urls:
                for a in await prometheus_alerts(self.session, url):
                    ident = (a["labels"]["alertname"], a["labels"].get("account", ""))
                    self.states.setdefault(ident, set()).add(a["state"])
            await asyncio.sleep(0.2)

    async def was_pending(self, alert: str, account: str, seconds: float) -> bool:
        if "pending" in self.states.get((alert, account), set()):
            return True
        matchers = f'alertname="{alert}",alertstate="pending"' + (f',account="{account}"' if account else "")
        expr = f"max_over_time(ALERTS{{{matchers}}}[{math.ceil(seconds)}s])"
        for url in self.urls:
            if await prometheus_query(self.session, url, expr):
                return True
        return False


async def test_every_alert_fires_and_resolves_end_to_end(tmp_path, session):
    test_started = time.monotonic()  # every Prometheus of the test starts after this
    sims = {"shared": Simulator(time_scale=0.1)}
    skew, jumped = [0.0], [0.0]
    for name in OWN_SIMULATOR:
        shift = {"skew": skew, "refused": jumped}.get(name)
        clock = ShiftedClock(lambda shift=shift: time.time() + shift[0]) if shift is not None else None
        sims[name] = Simulator(time_scale=0.1, clock=clock)
    for sim in sims.values():
        await sim.start(host="127.0.0.1", port=0)
    exporters = ExporterProcesses(tmp_path)
    procs = []
    stack = contextlib.AsyncExitStack()
    try:
        for name in [*ACCOUNTS_A, "blocked", "down", "lagging", "contended"]:
            windows = {"DERIVATIVES": 30, "SPOT": 30} if name == "late" else None
            sims.get(name, sims["shared"]).add_account(
                key(name), secret_env(name), name=name, dcp=windows, unified_margin_status=ACCOUNT_MODE.get(name)
            )
        names = [*ACCOUNTS_A, "blocked", "down", "lagging", "contended"]
        env = {secret_env(n): secret_env(n) for n in names} | {"BOT_TOKEN": TOKEN}
        ports = {x: free_port() for x in "ABCDE"}
        configs = {
            "A": ACCOUNTS_A,
            "B": {"blocked": ENFORCE},
            "C": {"down": {}},
            "D": {"lagging": {}},
            "E": {"contended": ENFORCE},
        }

        def start_exporter(x: str, log: str) -> None:
            path = tmp_path / f"exporter-{x}.yml"
            path.write_text(yaml.safe_dump(exporter_config(configs[x], sims)))
            args = ("--config.file", str(path), "--web.listen-address", f"127.0.0.1:{ports[x]}")
            exporters.start(*args, name=log, **env)

        exporter_started = time.monotonic()
        for x in "ABCDE":
            start_exporter(x, f"exporter-{x}")
        receiver = await stack.enter_async_context(Receiver())
        am, am_url = start_alertmanager(tmp_path, alertmanager_config(tmp_path, receiver))
        procs.append(am)
        rules = write_rules(tmp_path, TEST_CONFIG)
        prom, prom_url = start_prometheus(
            tmp_path, rules, targets=[f"127.0.0.1:{ports[x]}" for x in "ABCDE"], alertmanager=am_url
        )
        procs.append(prom)
        sd = tmp_path / "targets.json"
        sd.write_text("[]")
        lonely_rules = write_rules(tmp_path, TEST_CONFIG, only={"BybitDcpExporterAbsent"}, name="absent.yml")
        lonely_started = time.monotonic()
        lonely, lonely_url = start_prometheus(
            tmp_path, lonely_rules, file_sd=sd, alertmanager=am_url, name="prometheus-absent"
        )
        procs.append(lonely)
        tracker = Tracker(session, [prom_url, lonely_url])
        tracking = asyncio.create_task(tracker.run())

        await eventually(lambda: am_ready(session, am_url, am), timeout=30, what="alertmanager")
        every = len(ACCOUNTS_A) + 4

        async def all_polled() -> bool:
            exporters.assert_running()
            return len(await prometheus_query(session, prom_url, "bybit_dcp_up == 1")) == every

        await eventually(all_polled, timeout=60, interval=0.2, what="Prometheus to see every account polled")

        async def metric(expr: str) -> bool:
            return bool(await prometheus_query(session, prom_url, expr))

        # ------------------------------------------------------------ the incidents
        shared = sims["shared"]
        bots: list[asyncio.Task] = []

        async def bot(account: str, seconds: float | None) -> None:
            """A bot's signs of life every 0.2 s, for ``seconds`` (None: until the test ends)."""
            url = f"http://127.0.0.1:{ports['A']}/api/v1/accounts/{account}/liveness"
            until = None if seconds is None else time.monotonic() + seconds
            while until is None or time.monotonic() < until:
                async with session.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                    assert resp.status == 204
                await asyncio.sleep(0.2)

        async def let_go() -> None:
            await bot("let-go", 0.6)  # arms, then the bot stops

        async def back(account: str) -> None:
            bots.append(asyncio.create_task(bot(account, None)))

        async def stall(account: str, on: bool) -> None:
            shared.stall(key(account), on)
            shared.drop_pongs(key(account), on)

        async def flap() -> None:
            for _ in range(5):
                await eventually(lambda: shared.connections(key("flapping")), timeout=10, what="a reconnect")
                closed = set(shared.connections(key("flapping")))
                shared.close_connections(key("flapping"), 1011, "flap")
                # Gone, by id: a quick reconnect may never let the account show no connection at all.
                await eventually(
                    lambda closed=closed: not closed & set(shared.connections(key("flapping"))),
                    timeout=5,
                    what="the close",
                )

        async def trigger() -> None:
            shared.place_order(key("trigger"), category="linear", price="60000")
            await protected_session(shared, key("trigger"), topics=("dcp.future",), hold=0.2)

        async def trigger_counted() -> None:
            await eventually(lambda: shared.account(key("trigger")).triggers, timeout=10, what="DCP to fire")

        hang = 9.0  # below the REST client's 10 s timeout: the poll succeeds, late

        async def hang_poll() -> None:
            infos = [{"product": p, "dcpStatus": "ON", "timeWindow": "10"} for p in ("DERIVATIVES", "SPOT")]
            answer = {"retCode": 0, "retMsg": "success", "result": {"dcpInfos": infos}, "retExtInfo": {}}
            answer["time"] = int((time.time() + hang) * 1000)  # Bybit's time when it answers: no skew
            sims["stale"].force_response(DCP_INFO, body=json.dumps(answer), delay=hang)

        async def hang_over() -> None:
            await eventually(
                lambda: metric('time() - bybit_dcp_last_poll_success_timestamp_seconds{account="stale"} < 2'),
                timeout=30,
                what="the hung poll to end",
            )

        async def fail_sets() -> None:
            sims["failing"].force_error(SET_DCP, 10016, None)
            sims["failing"].set_dcp(key("failing"), "SPOT", 30)

        async def put_back_by_hand() -> None:
            sims["failing"].clear_errors()
            sims["failing"].set_dcp(key("failing"), "SPOT", 10)

        async def block() -> None:
            sims["blocked"].force_error(SET_DCP, 10005, None)
            sims["blocked"].set_dcp(key("blocked"), "SPOT", 30)

        async def fix_permission_and_restart() -> None:
            sims["blocked"].clear_errors()
            stop_process(exporters.procs[1][0])
            start_exporter("B", "exporter-B-restarted")

        async def contend() -> None:
            """Another writer: SPOT back to 30 whenever exporter E has set 10, until E stands down (bounded)."""
            acct = shared.account(key("contended"))
            shared.set_dcp(key("contended"), "SPOT", 30)
            stood_down = 'bybit_dcp_reassert_blocked{account="contended",reason="contended"} == 1'
            for _ in range(600):
                if await metric(stood_down):
                    return
                if acct.dcp.get("SPOT") == 10:
                    shared.set_dcp(key("contended"), "SPOT", 30)
                await asyncio.sleep(0.1)
            raise AssertionError("exporter E never stood down")

        async def one_writer_and_restart() -> None:
            stop_process(exporters.procs[4][0])
            start_exporter("E", "exporter-E-restarted")

        async def kill_c() -> None:
            stop_process(exporters.procs[2][0])

        async def restart_c() -> None:
            start_exporter("C", "exporter-C-restarted")

        async def add_target() -> None:
            sd.write_text(json.dumps([{"targets": [f"127.0.0.1:{ports['A']}"]}]))

        async def reasserted() -> None:
            shared.set_dcp(key("reasserted"), "SPOT", 30)

        async def put_back() -> None:
            await eventually(lambda: shared.account(key("reasserted")).dcp["SPOT"] == 10, timeout=20, what="put back")

        lagging = exporters.procs[3][0]
        stalls: list[asyncio.Task] = []

        async def stop_and_continue() -> None:
            """Exporter D stopped 0.3 s in every 0.5 s (bounded: 2 minutes at most)."""
            for _ in range(240):
                os.kill(lagging.pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(0.3)
                finally:
                    os.kill(lagging.pid, signal.SIGCONT)
                await asyncio.sleep(0.2)

        async def lag() -> None:
            stalls.append(asyncio.create_task(stop_and_continue()))

        async def no_lag() -> None:
            for task in stalls:
                task.cancel()
            await asyncio.gather(*stalls, return_exceptions=True)

        def call(f: Callable, *args) -> Callable[[], Awaitable[object]]:
            async def run() -> object:
                return f(*args)

            return run

        incidents = [
            Incident("BybitDcpExporterDown", None, "exporter C stopped; restarted", kill_c, restart_c,
                     {"instance": f"127.0.0.1:{ports['C']}"}),
            Incident("BybitDcpExporterAbsent", None, "a Prometheus with no target; exporter A added", _nothing,
                     add_target),
            Incident("BybitDcpExporterEventLoopLag", None, "exporter D stopped 0.3 s in every 0.5 s; let run",
                     lag, no_lag, {"instance": f"127.0.0.1:{ports['D']}"}),
            Incident("BybitDcpConfigPollFailing", "poll", "query-dcp-info answers 10016; cleared",
                     call(sims["poll"].force_error, DCP_INFO, 10016, None), call(sims["poll"].clear_errors),
                     in_description="Last error 10016"),
            Incident("BybitDcpConfigStale", "stale", f"one poll hangs {hang:g} s, then succeeds", hang_poll,
                     hang_over),
            Incident("BybitDcpNotEnabled", "not-enabled", "SPOT switched off behind the exporter; back on",
                     call(shared.set_dcp, key("not-enabled"), "SPOT", None),
                     call(shared.set_dcp, key("not-enabled"), "SPOT", 10), {"product": "SPOT"}),
            Incident("BybitDcpWindowDrift", "drift", "SPOT window 30 s, desired 10 s (observer); set back",
                     call(shared.set_dcp, key("drift"), "SPOT", 30), call(shared.set_dcp, key("drift"), "SPOT", 10),
                     {"product": "SPOT"}),
            Incident("BybitDcpCategoryUnprotected", "uta1", "UTA 1.0 from the start; DERIVATIVES DCP switched off",
                     _nothing, call(shared.set_dcp, key("uta1"), "DERIVATIVES", None), {"category": "inverse"},
                     in_description="unifiedMarginStatus 3"),
            Incident("BybitDcpHeartbeatGapHigh", "late", "stream stalled, pongs dropped (30 s window); lifted",
                     lambda: stall("late", True), lambda: stall("late", False), {"product": "DERIVATIVES"}),
            Incident("BybitDcpHeartbeatGapCritical", "silent", "stream stalled, pongs dropped (10 s window); lifted",
                     lambda: stall("silent", True), lambda: stall("silent", False), {"product": "DERIVATIVES"}),
            Incident("BybitDcpStreamDisconnected", "disconnected", "websocket auth refused (refuse_streams); lifted",
                     call(shared.refuse_streams, key("disconnected"), True),
                     call(shared.refuse_streams, key("disconnected"), False)),
            Incident("BybitDcpReconnectFlapping", "flapping", "5 server closes; then none", flap, _nothing),
            Incident("BybitDcpHeartbeatRttHigh", "slow", "pongs 0.7 s late; on time again",
                     call(shared.set_pong_latency, key("slow"), 0.7), call(shared.set_pong_latency, key("slow"), 0)),
            Incident("BybitDcpTriggered", "trigger", "a bot vanishes, DCP cancels its order", trigger,
                     trigger_counted, {"product": "DERIVATIVES"}),
            Incident("BybitDcpWindowReasserted", "reasserted", "SPOT window 30 s (enforce puts it back)", reasserted,
                     put_back, {"product": "SPOT"}),
            Incident("BybitDcpReassertFailing", "failing", "window drifted, every set answers 10016; put back by hand",
                     fail_sets, put_back_by_hand, {"product": "SPOT"}),
            Incident("BybitDcpReassertBlocked", "blocked", "window drifted, the set answers 10005; fixed, restarted",
                     block, fix_permission_and_restart),
            Incident("BybitDcpReassertContended", "contended", "another writer puts SPOT back to 30; it stops, restart",
                     contend, one_writer_and_restart, {"product": "SPOT"}),
            Incident("BybitDcpClockSkew", "skew", "Bybit's clock 3 s ahead; back in step",
                     call(skew.__setitem__, 0, 3.0), call(skew.__setitem__, 0, 0.0)),
            Incident("BybitDcpClockSkewRefused", "refused", "Bybit's clock two days ahead; back in step",
                     call(jumped.__setitem__, 0, 2 * 86400.0), call(jumped.__setitem__, 0, 0.0)),
            Incident("BybitDcpRateLimitHeadroomLow", "ratelimit", "query-dcp-info limit 1/s; back to 5/s",
                     call(sims["ratelimit"].set_rate_limit, DCP_INFO, 1),
                     call(sims["ratelimit"].set_rate_limit, DCP_INFO, 5), {"endpoint": "query_dcp_info"}),
            Incident("BybitDcpGuardianLetGo", "let-go", "the bot's signs of life stop; they resume", let_go,
                     lambda: back("let-go"), {"product": "DERIVATIVES"}),
            Incident("BybitDcpGuardianNeverArmed", "never-armed", "no sign of life from the start; the bot starts",
                     _nothing, lambda: back("never-armed"), {"product": "DERIVATIVES"}),
            Incident("BybitDcpDrillFailed", "drill", "order/create answers 10016; cleared",
                     call(sims["drill"].force_error, CREATE, 10016, None), call(sims["drill"].clear_errors),
                     {"product": "DERIVATIVES"}),
        ]  # fmt: skip
        assert sorted(i.alert for i in incidents) == sorted(RULES), "an alert without an incident, or one too many"
        since = {
            "BybitDcpExporterAbsent": lonely_started,
            "BybitDcpGuardianNeverArmed": exporter_started,
            "BybitDcpCategoryUnprotected": exporter_started,
        }

        async def prove(incident: Incident) -> Measured:
            rule = RULES[incident.alert]
            labels = incident.labels | ({"account": incident.account} if incident.account else {})
            started = since.get(incident.alert) or time.monotonic()
            await incident.start()
            ((receiver_name, alert),) = (await eventually(
                lambda: receiver.alerts(incident.alert, "firing", **labels), timeout=90, interval=0.1,
                what=f"{incident.alert} to reach the receiver",
            ))[:1]  # fmt: skip
            fired = alert["received_at"]
            severity = rule["labels"]["severity"]
            assert receiver_name == RECEIVER_OF[severity], (incident.alert, receiver_name)
            assert alert["labels"]["severity"] == severity
            if incident.account:
                assert alert["labels"]["job"] == JOB
            annotations = alert["annotations"]
            assert annotations["summary"] == rule["annotations"]["summary"]
            assert annotations["runbook_url"].endswith(f"runbook.md#{incident.alert.lower()}")
            description = annotations["description"]
            assert "<no value>" not in description and "{{" not in description, description
            assert (incident.account or "") in description and incident.in_description in description, description
            await incident.clear()
            cleared = time.monotonic()
            ((_, done),) = (await eventually(
                lambda: [x for x in receiver.alerts(incident.alert, "resolved", **labels) if x[1]["received_at"] > fired],
                timeout=90, interval=0.1, what=f"{incident.alert} to resolve",
            ))[:1]  # fmt: skip
            pending = await tracker.was_pending(incident.alert, incident.account or "", time.monotonic() - test_started)
            if rule["for"] not in ("0m", "0s", "0"):
                assert pending, f"{incident.alert} was never seen pending"
            return Measured(incident.alert, incident.what, pending, fired - started, done["received_at"] - cleared)

        results = await asyncio.gather(*(prove(i) for i in incidents), return_exceptions=True)
        tracking.cancel()
        await no_lag()
        for task in bots:
            task.cancel()
        failed = [f"{i.alert}: {r!r}" for i, r in zip(incidents, results, strict=True) if isinstance(r, BaseException)]
        table = "\n".join(
            f"| `{r.alert}` | {r.what} | {r.fire:.1f} s | {r.resolve:.1f} s |"
            for r in sorted((r for r in results if isinstance(r, Measured)), key=lambda r: r.alert)
        )
        out = ROOT / "test-artifacts"
        out.mkdir(exist_ok=True)
        (out / "alert-matrix.md").write_text(
            "| alert | incident | fire | resolve |\n|---|---|---|---|\n" + table + "\n"
        )
        print(table)
        assert not failed, "\n".join(failed)
    finally:
        for proc in procs:
            stop_process(proc)
        exporters.stop_all()
        for sim in sims.values():
            await sim.stop()
        await stack.aclose()
