"""The exporter's CPU for one ping cycle and for one poll, in its own process, against the simulator.

The simulator runs in a child process on loopback, so the figures are the client's alone
(``time.process_time`` of this process over the measured stretch, divided by the cycles):

- ping cycle: ``--streams`` private streams pinging every ``--interval`` seconds, for about
  ``--pongs`` pongs (a ping written, its pong read, parsed and recorded);
- poll: ``--polls`` calls of ``query_dcp_info`` one after the other on one REST client.

With ``--code-only`` it measures the protocol code alone, without sockets or a simulator, which
is steadier on a shared machine: a ping and its pong through :class:`StreamSession` and the
exporter's observer, and ``query_dcp_info`` on a client whose session answers at once.

    python3 benchmarks/bench_cycle_cpu.py [--streams 20] [--interval 0.25] [--pongs 4000] [--polls 2000]
    python3 benchmarks/bench_cycle_cpu.py --code-only
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import ClassVar

import aiohttp

from exporter.bybit.pacing import ConnectionBudget
from exporter.bybit.rest import RestClient
from exporter.bybit.stream import PrivateStream, StreamConfig
from exporter.metrics import Metrics
from exporter.secrets import Secret

KEY, SECRET = "benchkey", "bench-secret-0123456789"
SIMULATOR = f"""
import asyncio
from exporter.simulator import Simulator

async def serve():
    async with Simulator(rate_limit_per_second=10**9) as sim:
        sim.add_account({KEY!r}, {SECRET!r})
        print(sim.rest_url, sim.ws_url, flush=True)
        await asyncio.Event().wait()

asyncio.run(serve())
"""


def stream_observer(metrics: Metrics, account: str) -> object:
    """What the stream takes as its third argument: the metrics, or an observer writing them."""
    try:
        from exporter.monitor.stream_metrics import StreamMetrics  # absent before the split
    except ImportError:
        return metrics
    return StreamMetrics(metrics, account)


def rest_recorder(metrics: Metrics, account: str) -> dict[str, object]:
    if "metrics" in inspect.signature(RestClient).parameters:
        return {"metrics": metrics}
    from exporter.monitor.rest_metrics import RestMetrics  # present after the split

    return {"observer": RestMetrics(metrics, account, "testnet")}


async def ping_cycles(url: str, streams: int, interval: float, pongs: int) -> float:
    metrics = Metrics()
    tasks = []
    for i in range(streams):
        account = f"a{i}"
        metrics.add_account(account, environment="testnet", mode="observer")
        config = StreamConfig(url, KEY, Secret(SECRET), ("order",), ping_interval=interval, ping_phase=0.0)
        stream = PrivateStream(
            account, config, stream_observer(metrics, account), on_orders=lambda o: None, budget=ConnectionBudget()
        )  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(stream.run()))

    def count() -> float:
        return sum(
            metrics.registry.get_sample_value("bybit_dcp_ws_ping_rtt_seconds_count", {"account": f"a{i}"}) or 0
            for i in range(streams)
        )

    while count() < streams:
        await asyncio.sleep(0.05)
    start_count, start_cpu = count(), time.process_time()
    await asyncio.sleep(pongs / streams * interval)  # looked at once: reading the registry costs too
    cpu, done = time.process_time() - start_cpu, count() - start_count
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return cpu / done


async def polls(base_url: str, n: int) -> float:
    metrics = Metrics()
    metrics.add_account("p", environment="testnet", mode="observer")
    async with aiohttp.ClientSession() as session:
        rest = RestClient(
            session,
            account="p",
            environment="testnet",
            base_url=base_url,
            api_key=KEY,
            api_secret=Secret(SECRET),
            **rest_recorder(metrics, "p"),  # type: ignore[arg-type]
        )
        for _ in range(50):  # warm: the connection, the caches
            await rest.query_dcp_info()
        start = time.process_time()
        for _ in range(n):
            await rest.query_dcp_info()
        return (time.process_time() - start) / n


def code_only_ping(n: int = 100_000) -> float:
    """CPU seconds of one ping and its pong through the session and the exporter's observer."""
    from exporter.bybit import messages as msg  # only for the code-only figures
    from exporter.bybit.session import StreamSession
    from exporter.monitor.stream_metrics import StreamMetrics

    metrics = Metrics()
    metrics.add_account("a", environment="testnet", mode="observer")
    session = StreamSession(KEY, Secret(SECRET), ("order",), rng=random.Random(1))
    observer = StreamMetrics(metrics, "a")
    wall = time.time()
    session.opened(0.0, wall)
    session.receive(msg.AuthAck(True), 0.0, wall)
    observer.on_event(session.receive(msg.SubscribeAck(True), 0.0, wall))  # type: ignore[arg-type]
    start = time.process_time()
    for i in range(n):
        session.ping_frame()
        session.ping_written(float(i))
        out = session.receive(msg.Pong(session._ping_req, int(wall * 1000)), i + 0.01, wall)
        observer.on_event(out)  # type: ignore[arg-type]
    return (time.process_time() - start) / n


class _Content:
    """The body stream of an answer: what ``read_bounded`` reads, one chunk and the end."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        yield self.body


class _Answered:
    """An aiohttp session stand-in whose every request is answered at once with one DCP setting:
    as much of ``ClientResponse`` as the client and ``read_bounded`` use."""

    status = 200
    body = json.dumps(
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"dcpInfos": [{"product": "DERIVATIVES", "dcpStatus": "ON", "timeWindow": "10"}]},
        }
    ).encode()
    headers: ClassVar[dict[str, str]] = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "9"}
    content_length = len(body)
    content = _Content(body)

    def request(self, *args: object, **kwargs: object) -> _Answered:
        return self

    async def read(self) -> bytes:
        return self.body

    def close(self) -> None:
        return None

    async def __aenter__(self) -> _Answered:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def code_only_poll(n: int = 30_000) -> float:
    metrics = Metrics()
    metrics.add_account("p", environment="testnet", mode="observer")
    rest = RestClient(
        _Answered(),  # type: ignore[arg-type]
        account="p",
        environment="testnet",
        base_url="https://api.example",
        api_key=KEY,
        api_secret=Secret(SECRET),
        **rest_recorder(metrics, "p"),  # type: ignore[arg-type]
    )
    for _ in range(100):
        await rest.query_dcp_info()
    start = time.process_time()
    for _ in range(n):
        await rest.query_dcp_info()
    return (time.process_time() - start) / n


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--streams", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--pongs", type=int, default=4000)
    p.add_argument("--polls", type=int, default=2000)
    p.add_argument("--code-only", action="store_true", help="the protocol code alone, no sockets")
    args = p.parse_args()
    if args.code_only:
        # The ping's figure first, on its own line: it does not wait on the poll's.
        print(f"code only: ping cycle {code_only_ping() * 1e6:.2f} us CPU", flush=True)
        print(f"code only: poll (query_dcp_info) {await code_only_poll() * 1e6:.1f} us CPU")
        return
    # The simulator in a child process, its rate limits out of the way (the polls go back to back).
    sim = subprocess.Popen([sys.executable, "-c", SIMULATOR], stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        rest_url, ws_url = sim.stdout.readline().split()
        ping = await ping_cycles(ws_url, args.streams, args.interval, args.pongs)
        poll = await polls(rest_url, args.polls)
        print(f"ping cycle: {ping * 1e6:.0f} us CPU; poll (query_dcp_info): {poll * 1e6:.0f} us CPU")
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
