"""``docs/metrics.md``, written from the table of metric specs, so the page never disagrees
with what ``/metrics`` exposes.

    python3 -m exporter.metrics.docs > docs/metrics.md     # after changing a spec
    python3 -m exporter.metrics.docs --check               # exit 1 when docs/metrics.md is stale
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from ..dcp import CATEGORY_PRODUCT, PRODUCTS
from . import specs
from .registry import DOMAINS
from .specs import GAUGE, GROUPS, GUARDIAN, SPECS, START, STREAM, MetricSpec

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
COMMAND = "python3 -m exporter.metrics.docs > docs/metrics.md"


def _code(values: Iterable[str]) -> list[str]:
    return [f"`{v}`" for v in values]


def _either(values: Iterable[str]) -> str:
    """```a`, `b` or `c```."""
    words = _code(values)
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)


def _categories() -> str:
    """Which product each category belongs to: "`spot` belongs to SPOT, `linear` and ..."."""
    parts: list[str] = []
    for product in PRODUCTS:
        categories = " and ".join(_code(c for c, p in CATEGORY_PRODUCT.items() if p == product))
        parts.append(f"{categories} {'to' if parts else 'belongs to'} {product}")
    return ", ".join(parts)


def labels() -> list[str]:
    return [
        "- `account`: the configured account name (never the API key).",
        f"- `product`: a DCP product, {_either(DOMAINS['product'])}.",
        f"- `category`: a Bybit order category, {_either(DOMAINS['category'])}",
        f"  ({_categories()}).",
        f"- `endpoint`: a REST call, {_either(DOMAINS['endpoint'])}.",
        f"- `reason`: why the private stream reconnected, {_either(DOMAINS['reason'])}.",
    ]


def from_the_start(spec: MetricSpec) -> str:
    """The spec's :class:`~.specs.AtZero` rule in words: which series exist before any value."""
    rule = spec.at_zero
    if rule is None:
        return "–"
    if rule.by == START:
        return f"{rule.value:g}" if spec.labels else "always"
    if rule.value == "desired_windows":
        value = "the desired window"
    elif isinstance(rule.value, str):
        value = "the configured value"
    else:
        value = f"{rule.value:g}"
    if rule.only == "desired":
        value += (
            " for each product with one"
            if rule.value == "desired_windows"
            else " for each product with a desired window"
        )
        if rule.and_each:
            value += ", each " + " and ".join(f"`{v}`" for v in rule.and_each)
    elif rule.only == "guarded":
        value += " for each product it guards"
    elif rule.each:
        value += f" for every {rule.each if rule.each in DOMAINS else f'`{rule.each}`'}"
    if rule.by == STREAM:
        return "once the stream starts"
    if rule.by == GUARDIAN:
        return "once the guardian starts" if spec.source == specs.AT_SCRAPE else f"{value}, once the guardian starts"
    return value


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def table(group: str) -> list[str]:
    rows = [
        f"### {group}",
        "",
        "| metric | type | labels | from the start | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in SPECS:
        if spec.group != group:
            continue
        name = spec.sample if spec.kind != specs.HISTOGRAM else spec.name
        cells = (f"`{name}`", spec.kind, ", ".join(spec.labels), from_the_start(spec), spec.description)
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def render() -> str:
    lines = [
        "# Metrics",
        "",
        f"<!-- Generated from exporter/metrics/specs.py by `{COMMAND}`: edit the specs, not this page. -->",
        "",
        "Every metric is one entry in the table of metric specs, `exporter/metrics/specs.py`; the exporter's",
        "registry, this page and the metric contract test are made from it. Dashboards and alert rules depend",
        "on these names and labels. Metrics may be added; none is ever renamed.",
        "",
        "Labels:",
        "",
        *labels(),
        "",
        "Series whose labels are known in advance are exported from the start (the column *from the start*:",
        "their first value, and for which label values), so `increase()` sees the first trigger, and a",
        'missing series means a missing account, not "no events yet". A `–` there: the series appears',
        "with its first value. Not `bybit_dcp_enabled`: before the first good DCP-config poll the state is",
        'unknown, and a 0 would say "not enabled". Drift and re-assertion exist only for the products with',
        "a desired window, where they can happen.",
        "",
    ]
    for group in GROUPS:
        lines += [*table(group), ""]
    kinds = {spec.kind for spec in SPECS}
    assert kinds <= {GAUGE, specs.COUNTER, specs.HISTOGRAM}, kinds
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        if PAGE.read_text() != render():
            print(f"{PAGE} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
