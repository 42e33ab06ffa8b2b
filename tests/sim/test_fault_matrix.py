"""The fault matrix: each fault against a live exporter is detected, recovered from, and /metrics answers throughout.

One exporter (fleet + web app, as in test_account) per fault against the simulator, with short
intervals. Each case injects its fault, waits (bounded) until the exporter shows it, scrapes
/metrics meanwhile, clears the fault and waits until the account is up and connected again.
The last test feeds a live exporter a couple of thousand mutated frames and REST answers.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable

import pytest
from account_harness import KEY, account, running
from helpers import eventually
from mutations import mutate

from exporter.bybit import clients
from exporter.bybit.rest import ORDER_HISTORY, QUERY_DCP_INFO, SERVER_TIME, RestClient
from exporter.simulator import Simulator


def errors_of(r, endpoint: str = "query_dcp_info") -> float:
    return sum(
        s.value
        for family in r.metrics.registry.collect()
        if family.name == "bybit_dcp_api_errors"
        for s in family.samples
        if s.name.endswith("_total") and s.labels["endpoint"] == endpoint
    )


def reconnects(r, reasons: frozenset[str] | None = None) -> float:
    """Counted reconnects of any reason, or of one of ``reasons``."""
    return sum(
        s.value
        for family in r.metrics.registry.collect()
        if family.name == "bybit_dcp_ws_reconnects"
        for s in family.samples
        if s.name.endswith("_total") and (reasons is None or s.labels["reason"] in reasons)
    )


def rest_fault(**forced) -> Callable[[Simulator], None]:
    return lambda s: s.force_response(QUERY_DCP_INFO, **forced)


def hostile_10006(reset: str) -> Callable[[Simulator], None]:
    return rest_fault(
        body=json.dumps({"retCode": 10006, "retMsg": "x"}), headers={"X-Bapi-Limit-Reset-Timestamp": reset}
    )


def insane_time_after_10002(s: Simulator) -> None:
    s.force_error(QUERY_DCP_INFO, 10002, count=1)
    s.force_response(SERVER_TIME, body=json.dumps({"retCode": 0, "result": {"timeSecond": "inf", "timeNano": "1e400"}}))


WS = "ws"
REST = "rest"
FAULTS: dict[str, tuple[str, Callable[[Simulator], object]]] = {
    "close 1000": (WS, lambda s: s.close_connections(KEY, 1000)),
    "close 1011": (WS, lambda s: s.close_connections(KEY, 1011)),
    "close 1006": (WS, lambda s: s.abort_connections(KEY)),  # the TCP connection dropped, no close frame
    # auth works, subscribe answers success: false; closing makes the stream subscribe again
    "subscribe rejected": (WS, lambda s: (s.refuse_subscribe(KEY), s.close_connections(KEY, 1000))),
    "stall": (WS, lambda s: s.stall(KEY)),
    "frames of garbage": (WS, lambda s: [s.send_malformed(KEY, "\x00{") for _ in range(20)]),
    "REST 502": (REST, lambda s: s.force_error(QUERY_DCP_INFO, 502, count=2)),
    "REST 10002": (REST, lambda s: s.force_error(QUERY_DCP_INFO, 10002, count=1)),
    "REST 10006": (REST, lambda s: s.force_error(QUERY_DCP_INFO, 10006, count=2)),
    "REST hang": (REST, rest_fault(delay=2.5)),  # past the clients' timeout, HANG_TIMEOUT here
    "10006 reset inf": (REST, hostile_10006("inf")),
    "10006 reset in microseconds": (REST, hostile_10006(str(int(time.time() * 1e6)))),
    "market/time inf after 10002": (REST, insane_time_after_10002),
    "success without result": (REST, rest_fault(body=json.dumps({"retCode": 0, "retMsg": "OK"}))),
    "redirect": (REST, rest_fault(status=302, headers={"Location": "http://127.0.0.1:9/"})),
}
# The REST clients' timeout in the hang case: theirs is 10 s, which the test would wait out.
# The hang answers well after it, so only a client that gives up in time counts a "timeout".
HANG_TIMEOUT = 1.0
# Faults that must be detected as a reconnect of one of these reasons, not just any reconnect
# (a 1006 surfaces as a ConnectionClosed, "closed", or as a socket error, "error", by timing).
REASONS: dict[str, frozenset[str]] = {
    "close 1006": frozenset({"closed", "error"}),
    "subscribe rejected": frozenset({"subscribe_failed"}),
}


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_is_detected_recovered_and_metrics_answer_throughout(sim, name, monkeypatch):
    kind, inject = FAULTS[name]
    timeout = 10.0
    if name == "REST hang":  # every REST client the fleet builds, built with a short timeout
        monkeypatch.setattr(clients, "RestClient", functools.partial(RestClient, timeout=HANG_TIMEOUT))
    async with running(account(sim, desired_windows={"SPOT": 10}, reassert="enforce")) as r:
        await eventually(lambda: r.local("bybit_dcp_up", account="a") == 1, what="first poll")
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1, what="connected")
        errors, reconnected = errors_of(r), reconnects(r)
        reasons = REASONS.get(name)
        by_reason = reconnects(r, reasons) if reasons else 0.0
        inject(sim)

        async def detected() -> bool:
            await r.scrape()  # /metrics answers while the fault lasts
            if reasons:
                return reconnects(r, reasons) > by_reason
            if kind == WS:
                return (
                    reconnects(r) > reconnected
                    or (r.local("bybit_dcp_ws_invalid_messages_total", account="a") or 0) > 0
                )
            return errors_of(r) + errors_of(r, "server_time") > errors

        await eventually(detected, timeout=timeout, interval=0.05, what=f"{name} detected")
        if name == "REST hang":  # given up on, not answered late
            assert r.local("bybit_dcp_api_errors_total", account="a", endpoint="query_dcp_info", code="timeout") == 1
        sim.reset_faults()
        sim.clear_errors()

        async def recovered() -> bool:
            scraped = await r.scrape()
            up = scraped[("bybit_dcp_up", frozenset({"account": "a"}.items()))]
            connected = scraped[("bybit_dcp_ws_connected", frozenset({"account": "a"}.items()))]
            return up == 1 and connected == 1

        await eventually(recovered, timeout=timeout, interval=0.05, what=f"recovery from {name}")
    assert sim.account(KEY).set_dcp_calls == []  # no fault ever read as "DCP off" in enforce mode


@pytest.mark.parametrize("where", ["refused", "dns"])
async def test_an_unreachable_bybit_is_detected_and_metrics_answer(sim, where):
    host = "127.0.0.1:9" if where == "refused" else "bybit-dcp.invalid"
    async with running(account(sim, rest_url=f"http://{host}", ws_url=f"ws://{host}/v5/private")) as r:
        await eventually(lambda: errors_of(r) >= 1, what="a counted REST failure")
        await eventually(
            lambda: (r.local("bybit_dcp_ws_reconnects_total", account="a", reason="error") or 0) >= 1,
            what="a counted stream failure",
        )
        scraped = await r.scrape()
        assert scraped[("bybit_dcp_up", frozenset({"account": "a"}.items()))] == 0
        assert r.local("bybit_dcp_api_errors_total", account="a", endpoint="query_dcp_info", code="network") >= 1


async def test_dcp_cancels_with_insane_fields_never_count_or_date_a_trigger(sim):
    async with running(account(sim)) as r:
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1, what="connected")
        base = {
            "orderId": "n1",
            "category": "linear",
            "cancelType": "CancelByDCP",
            "updatedTime": str(int(time.time() * 1000)),
        }
        sim.send_malformed(KEY, json.dumps({"topic": "order", "data": [dict(base, orderStatus="New")]}))
        sim.send_malformed(
            KEY,
            json.dumps(
                {"topic": "order", "data": [dict(base, orderId="f1", orderStatus="Cancelled", updatedTime=1e20)]}
            ),
        )
        await eventually(
            lambda: r.local("bybit_dcp_ignored_cancels_total", account="a") == 1, what="the New order ignored"
        )
        await eventually(lambda: r.local("bybit_dcp_triggers_total", account="a", product="DERIVATIVES") == 1)
        last = r.local("bybit_dcp_last_trigger_timestamp_seconds", account="a", product="DERIVATIVES")
        assert abs(last - time.time()) < 60
        async with r.session.get(r.base_url + "/") as resp:
            assert resp.status == 200


async def test_a_live_exporter_takes_two_thousand_mutated_frames_and_answers(sim):
    rng = random.Random(2024)
    async with running(account(sim, ping_interval=0.5, pong_timeout=0.4)) as r:
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1, what="connected")
        for i in range(2000):
            data = mutate(rng)
            sim.send_malformed(KEY, data if isinstance(data, str) else data.decode("utf-8", "replace"))
            if i % 250 == 0:
                await r.scrape()
        for i in range(200):  # and 200 mutated REST answers, to polls and history
            body = mutate(rng)
            path = QUERY_DCP_INFO if i % 2 else ORDER_HISTORY
            sim.force_response(path, body=body if isinstance(body, str) else body.decode("utf-8", "replace"))
            if i % 20 == 0:
                await r.scrape()
        sim.clear_errors()
        await eventually(
            lambda: r.local("bybit_dcp_up", account="a") == 1 and r.local("bybit_dcp_ws_connected", account="a") == 1,
            timeout=15,
            what="up and connected after the fuzz",
        )
        assert (r.local("bybit_dcp_ws_invalid_messages_total", account="a") or 0) > 100
        assert r.fleet.supervisors["a"].stream.connected
