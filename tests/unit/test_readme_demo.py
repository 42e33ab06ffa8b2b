"""README's demo paragraph says which series exist from the start and which appear only with their
first value; this pins that list to what ``Metrics.add_account`` creates up front."""

from __future__ import annotations

import re

from helpers import ROOT

from exporter.metrics import Metrics

PROCESS_WIDE = {"bybit_dcp_exporter_shard_info", "bybit_dcp_exporter_tasks"}  # process-wide, not per account


def demo_paragraph() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## The demo\n")
    return text[start : text.index("\n## ", start)]


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
