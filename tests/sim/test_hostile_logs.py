"""Logs that cannot be forged: control characters from outside are escaped; a crash keeps its traceback."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import aiohttp
import pytest
from helpers import eventually
from virtual_clock import VirtualClock

from exporter.config import AccountConfig
from exporter.logs import setup_logging
from exporter.metrics import Metrics
from exporter.monitor.account import AccountSupervisor
from exporter.secrets import Secret

HOSTILE = "ok\r\x1b[2Jts=2020 level=error msg=forged\x07\x7f\x85\u2028\nsecond"


@pytest.fixture
def captured():
    """The root logger set up as the exporter does, writing into a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()

    def setup(fmt: str) -> io.StringIO:
        setup_logging("info", fmt, secrets=["the-secret-value"], api_keys=["APIKEY1234567"], stream=out)
        return out

    yield setup
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_control_characters_from_outside_are_escaped(captured, fmt):
    out = captured(fmt)
    logging.getLogger("exporter.test").warning(HOSTILE, extra={"ret_msg": HOSTILE, "kind": "a\x1bb"})
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one record, one line
    for raw in ("\r", "\x1b", "\x07", "\x7f", "\x85", "\u2028"):
        assert raw not in text
    if fmt == "json":
        doc = json.loads(text)
        assert doc["msg"] == HOSTILE and doc["ret_msg"] == HOSTILE  # escaped, not lost
    else:
        assert "\\u001b[2J" in text and "\\r" in text


async def test_a_crashed_part_is_logged_with_its_traceback(captured):
    out = captured("logfmt")
    config = AccountConfig(
        name="a",
        api_key="APIKEY1234567",
        api_secret=Secret("the-secret-value"),
        rest_url="http://127.0.0.1:9",
        ws_url="ws://127.0.0.1:9/v5/private",
    )
    async with aiohttp.ClientSession() as session:
        sup = AccountSupervisor(config, Metrics(), session, clock=VirtualClock())

        async def crash() -> None:
            raise OverflowError("cannot convert float infinity to integer")

        task = asyncio.create_task(sup.keep_running("poller", crash))
        await eventually(lambda: "restarting" in out.getvalue(), what="the crash logged")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    line = next(line for line in out.getvalue().splitlines() if "restarting" in line)
    assert "Traceback" in line and "OverflowError: cannot convert float infinity" in line
