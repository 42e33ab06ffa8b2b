"""Sharding: a stable split of the accounts, and three replicas that together watch every account once."""

from __future__ import annotations

import aiohttp
import pytest
import yaml
from exporter_process import ExporterProcesses
from helpers import eventually, free_port, parse_metrics

from exporter.monitor.shard import ordinal_from_hostname, resolve_index, select, shard_of
from exporter.simulator import Simulator

ACCOUNTS = [f"desk-{i:02d}" for i in range(12)]


def test_the_split_covers_every_account_once():
    shards = [select(ACCOUNTS, ACCOUNTS, i, 3) for i in range(3)]
    assert sorted(a for s in shards for a in s) == sorted(ACCOUNTS)
    assert all(shards), "12 accounts over 3 shards: none empty"
    assert select(ACCOUNTS, ACCOUNTS, 0, 1) == ACCOUNTS


def test_the_split_is_pinned():
    # SHA-256 of the name, not Python's salted hash(): every replica, Python and release agrees.
    # Changing it would move accounts between replicas on upgrade.
    assert shard_of("desk-a", 1000) == 65
    assert [shard_of(name, 3) for name in ACCOUNTS] == [shard_of(name, 3) for name in ACCOUNTS]


@pytest.mark.parametrize(
    ("hostname", "ordinal"),
    [("bybit-dcp-exporter-2", 2), ("bybit-dcp-exporter-10.svc.cluster.local", 10), ("exporter", None), ("a-b", None)],
)
def test_the_ordinal_comes_from_a_statefulset_host_name(hostname, ordinal):
    assert ordinal_from_hostname(hostname) == ordinal


def test_the_index_is_checked():
    assert resolve_index(None, 1, "anything") == 0
    assert resolve_index(None, 3, "bybit-dcp-exporter-1") == 1
    assert resolve_index(2, 3, "laptop") == 2
    for index, count, host, named in [
        (None, 3, "laptop", "--shard.index: not given"),
        (3, 3, "x", "must be in [0, 2]"),
        (None, 0, "x", "--shard.count"),
        (None, 2, "bybit-dcp-exporter-5", "must be in [0, 1]"),
    ]:
        with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
            resolve_index(index, count, host)


@pytest.mark.timeout(90)
@pytest.mark.e2e  # three exporter processes of their own
async def test_three_replicas_with_one_config_watch_every_account_exactly_once(tmp_path):
    sim = Simulator(time_scale=0.1, settle_delay=0.0)
    await sim.start(host="127.0.0.1", port=0)
    env = {}
    accounts = []
    for i, name in enumerate(ACCOUNTS):
        key, secret_var = f"shard-key-{i:04d}", f"SECRET_{i}"
        sim.add_account(key, f"shard-secret-{i:04d}", name=name)
        env[secret_var] = f"shard-secret-{i:04d}"
        accounts.append(
            {
                "name": name,
                "api_key": key,
                "api_secret_env": secret_var,
                "rest_url": sim.rest_url,
                "ws_url": sim.ws_url,
                "poll_interval": 1,
            }
        )
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"accounts": accounts}))
    procs = ExporterProcesses(tmp_path)
    ports = [free_port() for _ in range(3)]
    try:
        for index, port in enumerate(ports):
            procs.start(
                "--config.file",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--shard.count",
                "3",
                "--shard.index",
                str(index),
                name=f"shard-{index}",
                **env,
            )
        async with aiohttp.ClientSession() as http:

            async def scrape(port: int) -> dict | None:
                procs.assert_running()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as ready:
                        if ready.status != 200:
                            return None
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        return parse_metrics(await resp.text())
                except aiohttp.ClientError:
                    return None

            watched: dict[int, set[str]] = {}
            for index, port in enumerate(ports):
                values = await eventually(lambda p=port: scrape(p), timeout=30, interval=0.2, what=f"shard {index}")
                watched[index] = {dict(labels)["account"] for name, labels in values if name == "bybit_dcp_up"}
                assert (
                    values[
                        (
                            "bybit_dcp_exporter_shard_info",
                            frozenset({"shard_index": str(index), "shard_count": "3"}.items()),
                        )
                    ]
                    == 1
                )
                assert values[("bybit_dcp_exporter_shard_accounts", frozenset())] == len(watched[index])
                assert all(values[("bybit_dcp_up", frozenset({"account": a}.items()))] == 1 for a in watched[index])
        every = [a for index in range(3) for a in watched[index]]
        assert sorted(every) == sorted(ACCOUNTS), "each account watched by exactly one replica"
        assert all(watched.values())
        assert watched == {i: {a for a in ACCOUNTS if shard_of(a, 3) == i} for i in range(3)}
    finally:
        codes = procs.stop_all()
        await sim.stop()
    assert codes == [0, 0, 0]
