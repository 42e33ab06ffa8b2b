"""Fixtures for the simulator's own tests: a started simulator on loopback with fast DCP timers."""

import pytest
from sim_helpers import KEY, SECRET

from exporter.simulator import Simulator


@pytest.fixture
async def sim():
    # time_scale 0.05: a 10 s window lasts 0.5 s of wall time
    async with Simulator(time_scale=0.05) as s:
        s.add_account(KEY, SECRET, name="desk-a")
        yield s
