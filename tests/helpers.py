"""Helpers shared by the test modules (tests/ and tests/simulator/)."""

from __future__ import annotations

import asyncio
import inspect
import time


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` (sync or async) until it is truthy and return its value.

    Fails after ``timeout`` seconds: tests wait for a condition, bounded, never a fixed time.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
