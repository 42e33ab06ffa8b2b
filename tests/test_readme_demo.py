"""README's demo paragraph says which series exist from the start and which appear only with their
first value; this pins that list to what ``Metrics.add_account`` creates up front."""

from __future__ import annotations

import re

from helpers import ROOT

from exporter.metrics import Metrics

PROCESS_WIDE = {"bybit_dcp_exporter_shard_info"}  # set once at start-up by the command line, not per account


def demo_paragraph() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("bybit-dcp-exporter --demo")
    return text[start : text.index("### The status page", start)]


def named_after(paragraph: str, marker: str) -> set[str]:
    """The family names (``_total`` dropped, ``_*`` globs kept) after ``marker`` up to the next ``*…*`` marker."""
    part = paragraph.split(marker, 1)[1].split("\n*", 1)[0].split(". *", 1)[0]
    return {re.sub(r"_total$", "", name) for name in re.findall(r"`(bybit_dcp_[a-z_*]+)`", part)}


def test_the_readme_lists_exactly_the_series_not_created_up_front():
    metrics = Metrics()
    metrics.add_account(
        "demo",
        environment="custom",
        mode="observer",
        desired_windows={"DERIVATIVES": 10, "SPOT": 10},
        ping_interval=5.0,
        pong_timeout=2.5,
        poll_interval=10.0,
    )
    later = {f.name for f in metrics.registry.collect() if f.name.startswith("bybit_dcp_") and not f.samples}
    paragraph = demo_paragraph()
    listed = named_after(paragraph, "*First poll or pong*") | named_after(paragraph, "*Only on their event*")
    globs = {name for name in listed if name.endswith("_*")}
    covered = {name for name in later if any(name.startswith(g[:-1]) for g in globs)}
    assert listed - globs == later - covered - PROCESS_WIDE
    assert covered, "the drill and guardian globs match families"


def test_docs_demo_prints_the_scenarios_timeline_as_it_is():
    """docs/demo.md's minute-by-minute table is TIMELINE's (python3 -m exporter.simulator.scenario)."""
    from exporter.simulator.scenario import TIMELINE, timeline_markdown

    text = (ROOT / "docs" / "demo.md").read_text()
    printed = text.split("<!-- timeline: generated from TIMELINE -->\n", 1)[1].split("<!-- /timeline -->", 1)[0]
    assert printed == timeline_markdown(), "docs/demo.md is stale: paste `python3 -m exporter.simulator.scenario`"
    assert printed.count("\n| ") == len(TIMELINE)  # one row a phase, after the header
    for phase in TIMELINE:
        if phase.shot:
            assert f"(demo-{phase.shot}.png)" in text and (ROOT / "docs" / f"demo-{phase.shot}.png").is_file()


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
    assert len(lists["first"]) == 38 and len(lists["later"]) == 3 and len(lists["never"]) == 10
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
