"""An open stamped connection keeps what it still needs, not what its handshake left behind:
no request or response headers (3 KB a connection), and lists where websockets and the
stamps kept an empty deque (0.8 KB each); it reads, stamps and writes as before."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from websockets.asyncio.client import connect

from exporter.bybit.wire import stamped_connection
from exporter.runtime.clock import SYSTEM_CLOCK
from exporter.simulator import Simulator


@pytest.fixture
async def sim():
    async with Simulator() as s:
        s.add_account("mem-key", "mem-secret-0123456789")
        yield s


async def test_an_open_connection_holds_no_handshake_headers_and_still_talks(sim):
    async with connect(sim.ws_url, create_connection=stamped_connection(SYSTEM_CLOCK), compression=None) as ws:
        assert ws.request is None
        assert (
            ws.response is not None and ws.response.status_code == 101 and list(ws.response.headers.raw_items()) == []
        )
        assert type(ws.drain_waiters) is list and type(ws._arrivals) is list
        for i in range(3):  # the stamps stay in order
            await ws.send(json.dumps({"req_id": f"p{i}", "op": "ping"}))
        for i in range(3):
            message, arrived = await ws.recv_stamped()
            assert json.loads(message)["req_id"] == f"p{i}" and arrived > 0
        await ws.send("x" * 1_000_000)  # a write that must wait for the drain
        await ws.ping()


async def test_a_held_connection_costs_under_25_kb_of_python_objects(sim):
    """The client's connection, its protocol and its stamps, and the simulator's end of it (in
    this same process): 22 KB; 27 KB with the handshake's headers and the two empty deques kept."""
    url, factory = sim.ws_url, stamped_connection(SYSTEM_CLOCK)
    async with connect(url, create_connection=factory, compression=None):  # imports and caches warmed
        pass
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        conns = [await connect(url, create_connection=factory, compression=None) for _ in range(20)]
        held = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename")) / len(conns)
    finally:
        tracemalloc.stop()
    for ws in conns:
        await ws.close()
    assert held < 25 * 1024, held
