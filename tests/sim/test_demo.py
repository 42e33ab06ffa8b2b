"""The demo as docs/demo.md tells it, measured: a real short run of ``--demo`` in this process,
on loopback, gives data to exactly the families the page says have data within the first minute."""

from __future__ import annotations

import re

from helpers import ROOT

from exporter.metrics import Metrics


def demo_lists() -> dict[str, set[str]]:
    """docs/demo.md's measured lists: the families after each ``*…*`` marker of its last section."""
    section = (ROOT / "docs" / "demo.md").read_text().split("## Which metrics have data when", 1)[1]
    marks = {
        "first": "*Within the first minute*",
        "later": "*Later, with their first event*",
        "never": "*Never in the demo*",
    }
    return {
        key: set(re.findall(r"`(bybit_dcp_[a-z_]+)`", section.split(mark, 1)[1].split("\n\n", 1)[0]))
        for key, mark in marks.items()
    }


async def test_the_families_docs_demo_lists_for_the_first_minute_have_data_within_it():
    """A real short run of the demo in this process, on loopback: every family docs/demo.md says
    has data within the first minute gets a sample within 60 s, and none of the others has one."""
    import asyncio

    import aiohttp
    from helpers import eventually, free_port

    from exporter.cli import run_exporter
    from exporter.demo import DemoEnvironment, demo_config

    lists = demo_lists()
    families = {f.name for f in Metrics().registry.collect() if f.name.startswith("bybit_dcp_")}
    assert lists["first"] | lists["later"] | lists["never"] == families, "docs/demo.md lists another set of families"
    assert not (lists["first"] & lists["later"] or lists["first"] & lists["never"] or lists["later"] & lists["never"])
    port = free_port()
    config = demo_config(
        listen_address=f"127.0.0.1:{port}", telemetry_path="/metrics", log_level="error", log_format="logfmt"
    )
    env = DemoEnvironment()
    config = await env.start(config)
    stop = asyncio.Event()
    exporter = asyncio.create_task(run_exporter(config, stop))
    try:
        async with aiohttp.ClientSession() as session:

            async def sampled() -> set[str]:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        text = await resp.text()
                except aiohttp.ClientError:
                    return set()
                names = {
                    line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line.startswith("bybit_")
                }
                return {re.sub(r"(_bucket|_count|_sum|_total)$", "", n) for n in names}

            async def all_first() -> set[str] | None:
                seen = await sampled()
                return seen if lists["first"] <= seen else None

            seen = await eventually(all_first, timeout=60, interval=0.5, what="every first-minute family")
        assert not seen & (lists["later"] | lists["never"]), seen & (lists["later"] | lists["never"])
    finally:
        stop.set()
        await asyncio.wait_for(exporter, timeout=30)
        await env.stop()
