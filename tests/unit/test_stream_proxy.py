"""The stream's proxy: the websockets library's choice from the environment, worked out once per URL."""

from __future__ import annotations

import pytest
from helpers import without_proxy_variables

from exporter.bybit.stream import proxy_for


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    without_proxy_variables(monkeypatch)
    proxy_for.cache_clear()
    yield
    proxy_for.cache_clear()


def test_the_environments_proxy_is_used_and_no_proxy_respected(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "stream-testnet.bybit.com")
    assert proxy_for("wss://stream.bybit.com/v5/private") == "http://proxy.example:3128"
    assert proxy_for("wss://stream-testnet.bybit.com/v5/private") is None


def test_without_a_proxy_variable_there_is_none():
    assert proxy_for("wss://stream.bybit.com/v5/private") is None


def test_worked_out_once_per_url(monkeypatch):
    assert proxy_for("wss://stream.bybit.com/v5/private") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # a process's environment does not change
    assert proxy_for("wss://stream.bybit.com/v5/private") is None
    assert proxy_for.cache_info().hits == 1


def test_a_bad_url_is_left_to_the_connection_to_report():
    assert proxy_for("https://not-a-websocket.example") is None
