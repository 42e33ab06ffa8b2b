"""The `simulate` command as a real process, and the demo scenario in-process."""

import asyncio
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import websockets
from helpers import free_port
from sim_helpers import WsClient, wait_for

from exporter.simulator import Simulator
from exporter.simulator.cli import main
from exporter.simulator.pki import make_server_pki
from exporter.simulator.scenario import CYCLE_MINUTES, DRIFT_WINDOW, TIMELINE, Phase, Scenario, phase_at

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def start(args: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator.cli", "--listen", f"127.0.0.1:{port}", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            get_json(f"http://127.0.0.1:{port}/v5/market/time")
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read()) from None
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("simulator did not start")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()  # never leave a simulator running behind a failed test
        proc.communicate()
        raise AssertionError("the simulator did not stop within 10 s of SIGTERM") from None
    return proc.returncode, out


def test_cli_refuses_non_loopback_and_bad_flags(capsys):
    assert main(["--listen", "0.0.0.0:9000"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert main(["--listen", "127.0.0.1:9000", "--api-key", "k"]) == 2
    assert main(["--listen", "127.0.0.1:x"]) == 2


def test_cli_refuses_half_or_unreadable_tls_flags(capsys, tmp_path):
    assert main(["--listen", "127.0.0.1:9000", "--tls-cert", "cert.pem"]) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
    missing = str(tmp_path / "missing.pem")
    assert main(["--listen", "127.0.0.1:9000", "--tls-cert", missing, "--tls-key", missing]) == 2
    assert "cannot load them" in capsys.readouterr().err


@pytest.mark.e2e  # a process of its own
def test_cli_serves_https_with_the_given_certificate(tmp_path):
    pki = make_server_pki(tmp_path)
    command = [sys.executable, "-m", "exporter.simulator.cli", "--listen", f"127.0.0.1:{free_port()}"]
    command += ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and not line.startswith("simulator:"):  # the demo account's line comes first
            line = proc.stdout.readline()
        rest = line.split("REST ", 1)[1].split()[0]
        assert rest.startswith("https://127.0.0.1:") and "websocket wss://127.0.0.1:" in line
        trusting = ssl.create_default_context(cafile=str(pki.ca))
        with urllib.request.urlopen(f"{rest}/v5/market/time", timeout=2, context=trusting) as resp:
            assert json.loads(resp.read())["retCode"] == 0
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"{rest}/v5/market/time", timeout=2, context=ssl.create_default_context())
    finally:
        code, _ = stop(proc)
    assert code == 0


@pytest.mark.e2e  # a process of its own
def test_cli_with_credentials_and_sigterm():
    proc, port = start(["--api-key", "K1", "--api-secret", "S1", "--time-scale", "0.1"])
    state = get_json(f"http://127.0.0.1:{port}/__sim__/state")
    assert [a["api_key"] for a in state["accounts"]] == ["***"] and state["time_scale"] == 0.1
    code, out = stop(proc)
    assert code == 0 and "S1" not in out


@pytest.mark.e2e  # a process of its own
def test_cli_demo_account_prints_credentials():
    proc, port = start([])
    state = get_json(f"http://127.0.0.1:{port}/__sim__/state")
    _, out = stop(proc)
    (acct,) = state["accounts"]
    printed = out.split("api_key=", 1)[1].split()[0]  # the demo's own fresh credentials, printed to be used
    assert acct["api_key"] == f"{printed[:3]}***{printed[-2:]}" and "api_secret=" in out
    assert acct["dcp"] == {"DERIVATIVES": 10, "SPOT": 10}


@pytest.mark.e2e  # a process of its own
def test_cli_accounts_file_with_rsa(tmp_path, rsa_pem_pair):
    (tmp_path / "pub.pem").write_text(rsa_pem_pair()[1])
    (tmp_path / "accounts.yaml").write_text(
        "- {api_key: A, api_secret: sa, name: desk-a, dcp: {DERIVATIVES: 20}}\n"
        "- {api_key: B, rsa_public_key_file: pub.pem, name: desk-b, dcp: {}}\n"
    )
    proc, port = start(["--accounts", str(tmp_path / "accounts.yaml")])
    state = get_json(f"http://127.0.0.1:{port}/__sim__/state")
    stop(proc)
    assert [(a["name"], a["dcp"]) for a in state["accounts"]] == [("desk-a", {"DERIVATIVES": 20}), ("desk-b", {})]


async def test_demo_scenario_triggers_dcp_and_replaces_orders():
    async with Simulator(time_scale=0.05) as sim:
        acct = sim.add_account("demo", "secret")
        observer = await WsClient.connect(sim.ws_url, "demo", "secret", ["order"])
        stop_event = asyncio.Event()
        bot_at = phase_named("triggered").start
        scenario = Scenario(sim, "demo", rng=random.Random(7), start_minute=bot_at, step=0.05, bot_holds=0.1)
        task = asyncio.create_task(scenario.run(stop_event))
        await wait_for(lambda: {t["product"] for t in acct.triggers} == {"DERIVATIVES", "SPOT"}, timeout=10)
        assert all(t["order_ids"] for t in acct.triggers)
        push = await observer.recv_until(lambda f: any(o["cancelType"] == "CancelByDCP" for o in f["data"]), timeout=5)
        assert push["topic"] == "order"
        await wait_for(
            lambda: len(acct.active_orders(("linear",))) == 3 and len(acct.active_orders(("spot",))) == 3, timeout=5
        )
        assert {"dcp.future", "dcp.spot"} <= acct.subscribed_topics()
        stop_event.set()
        await asyncio.wait_for(task, timeout=3)
        await observer.close()


def phase_named(name: str) -> Phase:
    (phase,) = [p for p in TIMELINE if p.name == name]
    return phase


def test_the_timeline_cycles_through_every_state_with_quiet_stretches_between():
    """Each fault comes once a cycle, in this order, and the page has an ok screenshot to show."""
    starts = [p.start for p in TIMELINE]
    assert starts[0] == 0 and starts == sorted(starts) and starts[-1] < CYCLE_MINUTES
    actions = [p.action for p in TIMELINE if p.action]
    assert actions == ["close", "drift", "bot"]
    assert [p.name for p in TIMELINE if p.unreachable] == ["down"]
    assert {p.shot: p.state for p in TIMELINE if p.shot} == {
        "healthy": "ok",
        "degraded": "degraded",
        "down": "down",
        "triggered": "down",
    }
    assert phase_at(0.5).name == "healthy" and phase_at(CYCLE_MINUTES + 19.5).name == "down"
    # After the trigger the page is down 15 min, then degraded while BybitDcpTriggered fires
    # (31 min from the trigger): the cycle leaves at least 3 ok minutes before it starts again.
    trigger_fires = phase_named("triggered").start + 1.0  # bot holds 30 s, window 10 s
    assert CYCLE_MINUTES - (trigger_fires + 31) >= 3
    # The outage's reconnects leave the 15-minute flapping window before the trigger's alert clears.
    assert phase_named("back").start + 15 + 10 < trigger_fires + 31


async def test_the_scenario_plays_each_phase_on_entering_it_and_jumps():
    async with Simulator() as sim:
        acct = sim.add_account("demo", "secret")
        client = await WsClient.connect(sim.ws_url, "demo", "secret", ["order"])
        scenario = Scenario(sim, "demo", rng=random.Random(3), start_minute=phase_named("down").start)
        scenario.tick()  # the stream's host goes down: the client is dropped, handshakes get 503
        with pytest.raises(websockets.ConnectionClosed):
            await client.recv(timeout=5)
        with pytest.raises(websockets.InvalidStatus, match="503"):
            await WsClient.connect(sim.ws_url, "demo", "secret", ["order"])
        scenario.jump(phase_named("drift").start)
        scenario.tick()  # reachable again, and the window changed behind the client's back
        assert acct.dcp["SPOT"] == DRIFT_WINDOW
        again = await WsClient.connect(sim.ws_url, "demo", "secret", ["order"])
        scenario.jump(phase_named("slow heartbeat").start + 0.5)
        scenario.tick()
        assert 0.8 <= sim._core.faults.pong_latency["demo"] <= 1.2  # the slow spell's pongs
        assert len(acct.active_orders(("linear",))) == 3 and len(acct.active_orders(("spot",))) == 3
        await again.close()
