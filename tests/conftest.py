"""Shared fixtures. Tests run against the simulator over loopback; nothing reaches Bybit.

The tests live in three rooms, and each test is marked with its room, so
``pytest -m "not e2e"`` runs everything that needs no tool beyond Python:
``unit/`` (pure), ``sim/`` (the exporter's parts in the test's process, against the simulator
over loopback) and ``e2e/`` (real Prometheus, Alertmanager, Chromium, podman, kubectl, systemd,
the package build, whole benchmarks, and the exporter as a process of its own).
"""

import itertools
import os
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import settings

from exporter.bybit.transport import AiohttpTransport
from exporter.http.pool import Pool


def new_rsa_pem_pair() -> tuple[str, str]:
    """A fresh RSA key pair as (private key PEM, public key PEM), as Bybit's RSA API keys use."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture
def rsa_pem_pair() -> Callable[[], tuple[str, str]]:
    """Factory for RSA key pairs: ``private_pem, public_pem = rsa_pem_pair()``."""
    return new_rsa_pem_pair


@pytest.fixture
async def session():
    """One aiohttp client session for a test, closed after it (as the exporter uses one per process)."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture(params=["pool", "aiohttp"])
async def rest_session(request: pytest.FixtureRequest):
    """What a REST client sends through, once each way: the fleet's own HTTP/1.1 pool (its
    poll's path) and an aiohttp session (calls through a proxy, the drill, the doctor)."""
    if request.param == "aiohttp":
        async with aiohttp.ClientSession() as s:
            yield s
        return
    async with aiohttp.ClientSession() as proxied:
        pool = Pool(through_proxy=AiohttpTransport(proxied))  # as the fleet's: proxied calls by aiohttp
        try:
            yield pool
        finally:
            await pool.close()


ROOMS = ("unit", "sim", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the room (tests/<room>/...) it lives in; slowest first (below)."""
    _slowest_first(config, items)
    for item in items:
        parts = item.path.parts
        room = next(
            (parts[i + 1] for i in range(len(parts) - 1) if parts[i] == "tests" and parts[i + 1] in ROOMS), None
        )
        if room is not None:
            item.add_marker(room)


# Without e2e the suite waits on loopback sockets far more than it computes: six workers on
# two cores halve its time. The end-to-end tests run real Prometheus, Alertmanager, Chromium
# and image builds whose timings the alerts are judged by, so they keep one worker a core.
WORKERS_WITHOUT_E2E = 6
WORKERS = 2

E2E = Path(__file__).parent / "e2e"
_KEYWORDS = {"and", "or", "not"}


def _selects_no_e2e_test(config: pytest.Config) -> bool:
    """Whether ``-m`` rules out every test marked e2e, whatever other marks it carries.

    Sound, not a guess from the spelling: the expression is tried with ``e2e`` true and every
    other name it mentions true or false (a handful of names, so a few evaluations at most).
    """
    markexpr = config.getoption("markexpr", "") or ""
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression  # pytest's own parser of -m, not public

        expression = Expression.compile(markexpr)
    except Exception:  # an older or newer pytest, or a bad -m that pytest reports itself
        return False
    names = sorted({n for n in re.findall(r"(?:\w|:|\+|-|\.|\[|\]|\\|/)+", markexpr) if n not in _KEYWORDS} - {"e2e"})
    for values in itertools.product((False, True), repeat=len(names)):
        marks = {"e2e", *(n for n, v in zip(names, values) if v)}
        if expression.evaluate(lambda name, /, **kwargs: name in marks):
            return False
    return True


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With e2e deselected, tests/e2e is not imported at all: every worker would otherwise
    import its modules (the alert matrix builds its rule set at import) only to deselect them,
    about 1.5 s of CPU each, six times over."""
    if collection_path == E2E and _selects_no_e2e_test(config):
        return True
    return None


# Property tests: the full run (e2e included, as CI and README's command run it) is thorough,
# each property its whole count of examples; the quick run without e2e tries a quarter of
# them, drawn afresh each run. HYPOTHESIS_PROFILE=thorough (or quick) picks one explicitly.
# Neither has a deadline: a property fails on what it computes, never on how long a busy
# machine took to compute it.
THOROUGH_EXAMPLES = 100
settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, deadline=None)
settings.register_profile("quick", max_examples=THOROUGH_EXAMPLES // 4, deadline=None)


def pytest_configure(config: pytest.Config) -> None:
    profile = os.environ.get("HYPOTHESIS_PROFILE") or ("quick" if _selects_no_e2e_test(config) else "thorough")
    settings.load_profile(profile)


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis profile: {settings.get_current_profile_name()} (HYPOTHESIS_PROFILE=thorough for every example)"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default in pyproject): more workers when no e2e test is selected."""
    return WORKERS_WITHOUT_E2E if _selects_no_e2e_test(config) else WORKERS


# Slowest first. A few tests sit out seconds of real timeouts on loopback while most take
# milliseconds: given out in collection order, one of them dispatched late ends the run alone
# (xdist hands each worker tests a couple at a time, --maxschedchunk in pyproject). Each run
# records how long every test took in pytest's cache; the next run starts with the slowest,
# and the short ones fill in around them. The controller reads the record once and hands it
# to every worker, so all of them collect the same order, as xdist requires.
DURATIONS_KEY = "bybit-dcp/durations"


def _durations(config: pytest.Config) -> dict[str, float]:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return workerinput.get("durations") or {}
    cache = getattr(config, "cache", None)
    return cache.get(DURATIONS_KEY, {}) if cache is not None else {}


def _slowest_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    durations = _durations(config)
    if durations:
        items.sort(key=lambda item: -durations.get(item.nodeid, 0.0))  # stable: ties keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """(xdist) Every worker orders its collection by the controller's one reading of the record."""
    node.workerinput["durations"] = _durations(node.config)


_took: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _took[report.nodeid] = _took.get(report.nodeid, 0.0) + report.duration  # setup, call, teardown


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _took:
        return
    durations = {**_durations(session.config), **{k: round(v, 3) for k, v in _took.items()}}
    cache.set(DURATIONS_KEY, durations)
