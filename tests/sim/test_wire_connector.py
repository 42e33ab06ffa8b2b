"""The fleet's connector times the pool as the TraceConfig hooks do, without a trace config."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from helpers import rest_client

from exporter.bybit.wire import TimedConnector
from exporter.metrics import Metrics
from exporter.monitor.rest_metrics import PoolMetrics
from exporter.runtime.clock import SYSTEM_CLOCK
from exporter.simulator import Simulator

KEY = "wire-key"
SECRET = "wire-secret-0123456789"


@pytest.fixture
async def sim():
    async with Simulator() as s:
        s.add_account(KEY, SECRET)
        yield s


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_the_connector_leaves_the_pool_wait_out_of_the_duration_and_counts_connections(sim):
    metrics = Metrics()
    connector = TimedConnector(SYSTEM_CLOCK, PoolMetrics(metrics), limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = rest_client(session, sim.rest_url, metrics, KEY, SECRET, account="a")
        for _ in range(5):
            await client.server_time()
        assert value(metrics, "bybit_dcp_api_connections_opened_total") == 1

        # One slot: the second call waits for the first, which the server holds for 0.3 s.
        now = int(time.time())
        body = json.dumps({"retCode": 0, "retMsg": "OK", "result": {"timeSecond": str(now)}, "time": now * 1000})
        sim.force_response("/v5/market/time", body=body, delay=0.3)
        await asyncio.gather(client.server_time(), client.server_time())

    assert session.trace_configs == []  # nothing per request but the connection events
    assert value(metrics, "bybit_dcp_api_connection_wait_seconds_count") == 7
    assert value(metrics, "bybit_dcp_api_connection_wait_seconds_sum") >= 0.25  # the second call's wait
    durations = value(
        metrics, "bybit_dcp_api_request_duration_seconds_sum", environment="testnet", endpoint="server_time"
    )
    assert 0.3 <= durations < 0.45  # the held call, and six quick ones: the wait is not in it
    assert value(metrics, "bybit_dcp_api_connections_opened_total") == 1


async def test_a_request_without_a_rest_call_is_still_counted_in_the_pool(sim):
    """The guardian's Prometheus query shares the session: its waits and connections count too."""
    metrics = Metrics()
    async with aiohttp.ClientSession(connector=TimedConnector(SYSTEM_CLOCK, PoolMetrics(metrics))) as session:
        for _ in range(3):
            async with session.get(sim.rest_url + "/v5/market/time") as response:
                await response.read()
    assert value(metrics, "bybit_dcp_api_connection_wait_seconds_count") == 3
    assert value(metrics, "bybit_dcp_api_connections_opened_total") == 1
