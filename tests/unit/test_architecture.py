"""The house rules of docs/architecture.md, checked: layers, time, purity, lint, format and types.

Each check runs the real tool (import-linter, ruff, mypy) on the tree, or reads the code's
syntax tree, so a change that breaks a rule fails here with the tool's own explanation.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGE = ROOT / "exporter"
BIN = Path(sys.executable).parent
# Where time may only come from the injected Clock.
CLOCKED = ("bybit", "monitor")
# Calls that read the time, sleep, or draw randomness on their own.
TIME_CALLS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("asyncio", "sleep")}
IMPURE_MODULES = {"time", "random", "uuid", "secrets", "datetime"}


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(under.rglob("*.py"))


def calls(tree: ast.AST) -> list[tuple[str, str, int]]:
    """Every ``name.attr(...)`` call: (name, attr, line); ``x.y.attr()`` gives the last name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            value = node.func.value
            if isinstance(value, ast.Name):
                found.append((value.id, node.func.attr, node.lineno))
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
                found.append((value.func.attr, node.func.attr, node.lineno))  # get_running_loop().time()
    return found


def says_pure(tree: ast.Module) -> bool:
    doc = (ast.get_docstring(tree) or "").split("\n\n")[0].lower()
    return "sans-i/o" in doc or "pure" in doc or "no i/o" in doc


def test_layer_contracts_hold():
    result = run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_bybit_protocol_layer_is_forbidden_the_metrics():
    """The clients report to observers; a metric written from ``exporter.bybit`` breaks a contract."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    forbidden = {
        module
        for contract in contracts
        if contract["type"] == "forbidden" and contract["source_modules"] == ["exporter.bybit"]
        for module in contract["forbidden_modules"]
    }
    assert {"exporter.metrics", "exporter.monitor", "exporter.status", "exporter.web", "exporter.drill"} <= forbidden
    result = run(str(BIN / "lint-imports"))
    said = " ".join(result.stdout.split())  # the tool wraps long names
    assert "exporter.bybit imports nothing of exporter.metrics" in said and result.returncode == 0


@pytest.mark.parametrize("layer", CLOCKED)
def test_time_comes_only_from_the_injected_clock(layer):
    offences = []
    for path in modules(PACKAGE / layer):
        for name, attr, line in calls(ast.parse(path.read_text())):
            if (name, attr) in TIME_CALLS or (name, attr) in {("get_running_loop", "time"), ("loop", "time")}:
                offences.append(f"{path.relative_to(ROOT)}:{line}: {name}.{attr}()")
    assert offences == [], "use the injected Clock instead:\n" + "\n".join(offences)


def test_modules_that_say_they_are_pure_call_no_clock_random_or_uuid():
    pure = []
    offences = []
    for path in modules():
        tree = ast.parse(path.read_text())
        if not says_pure(tree):
            continue
        pure.append(path.relative_to(PACKAGE).as_posix())
        for name, attr, line in calls(tree):
            if name in IMPURE_MODULES or (name, attr) in TIME_CALLS:
                offences.append(f"{path.relative_to(ROOT)}:{line}: {name}.{attr}()")
    assert {"dcp.py", "bybit/heartbeat.py", "bybit/pacing.py", "monitor/triggers.py", "monitor/reassert.py"} <= set(
        pure
    )
    assert offences == [], "\n".join(offences)


def test_no_function_local_imports_without_a_reason():
    """An import inside a function needs a comment on it or just above it saying why."""
    offences = []
    for path in modules():
        source = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(source))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    around = source[inner.lineno - 2 : inner.end_lineno]
                    if not any("#" in text for text in around):
                        offences.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert offences == [], "function-local imports without a stated reason:\n" + "\n".join(offences)


def test_ruff_lint_is_clean():
    result = run(str(BIN / "ruff"), "check", "exporter", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied():
    result = run(str(BIN / "ruff"), "format", "--check", "exporter", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def documented_modules() -> dict[str, set[str]]:
    """The modules docs/architecture.md lists: ``### `exporter/<room>/` `` and its table's first column."""
    rooms: dict[str, set[str]] = {}
    room = None
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        if line.startswith("### `exporter/"):
            room = line.split("`")[1].removeprefix("exporter/").rstrip("/")
            rooms[room] = set()
        elif line.startswith("## "):
            room = None
        elif room is not None and line.startswith("| `"):
            rooms[room].add(line.split("`")[1])
    return rooms


def test_the_architecture_page_lists_every_module_and_no_other():
    documented = documented_modules()
    actual: dict[str, set[str]] = {}
    for path in modules():
        if "__pycache__" in path.parts:
            continue
        actual.setdefault(str(path.parent.relative_to(PACKAGE)).replace(".", ""), set()).add(path.name)
    assert documented == actual, {
        "missing from docs/architecture.md": {
            r: sorted(m - documented.get(r, set())) for r, m in actual.items() if m - documented.get(r, set())
        },
        "listed but not in exporter/": {
            r: sorted(m - actual.get(r, set())) for r, m in documented.items() if m - actual.get(r, set())
        },
    }
