"""Shared fixtures. Tests run against the simulator over loopback; nothing reaches Bybit.

The tests live in three rooms, and each test is marked with its room, so
``pytest -m "not e2e"`` runs everything that needs no tool beyond Python:
``unit/`` (pure), ``sim/`` (the exporter's parts in the test's process, against the simulator
over loopback) and ``e2e/`` (real Prometheus, Alertmanager, Chromium, podman, kubectl, systemd,
the package build, whole benchmarks, and the exporter as a process of its own).
"""

from collections.abc import Callable

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


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


ROOMS = ("unit", "sim", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the room (tests/<room>/...) it lives in."""
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


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default in pyproject): more workers when no e2e test is selected."""
    markexpr = (config.getoption("markexpr", "") or "").replace(" ", "")
    return WORKERS_WITHOUT_E2E if "note2e" in markexpr else WORKERS
