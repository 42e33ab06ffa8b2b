"""The unit room is pure: a test here that opens a network socket fails, so it cannot pass by
talking to something. Tests that need a socket belong in ``tests/sim`` or ``tests/e2e``."""

import socket

import pytest

NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkRefused(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str):
        real = getattr(socket.socket, name)

        def guarded(self: socket.socket, *args, **kwargs):
            if self.family in NETWORK_FAMILIES:
                raise NetworkRefused(f"socket.{name} in a unit test: move the test to tests/sim or tests/e2e")
            return real(self, *args, **kwargs)

        return guarded

    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse(name))
