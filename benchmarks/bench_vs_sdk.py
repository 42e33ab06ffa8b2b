"""Side by side on one machine: Bybit's Python SDK, two bare clients and this exporter.

Each client holds N authenticated private connections (subscribed to ``order``, JSON ping
every 20 s) to a fake Bybit running in other processes, one client after the other in the
same run. For each it measures, in steady state: resident memory, CPU over a window after a
warm-up, threads, and the time until the fakes held all N subscribed; for the exporter also the time
and size of ``/metrics`` and its RSS after the scrapes. It prints a table with the ratios of
each exporter kind to the SDK and to both floors.

- SDK: ``pybit.unified_trading.WebSocket(channel_type="private")``, one thread per socket
  (its URL constant is pointed at the fake, the only change made to it).
- floor: one asyncio process with aiohttp websockets doing auth, subscribe and JSON pings,
  nothing else: what a connection costs at the least. It pings at once and then on the
  exporter's grid (each connection at its own 250 ms step of the interval), as the exporter
  does: pings bunched together would cost a third as much each, a schedule the exporter
  avoids on purpose.
- wsfloor: the same with the websockets library, which the exporter's streams use: what a
  connection costs with the exporter's own websocket stack.
- exporter: ``bybit-dcp-exporter --config.file`` with N observer accounts (REST polls every
  30 s as well, which the SDK and the floors do not do).
- exporter-nopoll: the exporter holding the same connections with its DCP-config polls every
  50 minutes: like for like with the SDK and the floors, which do not poll.

Bybit allows 500 new connections per 5 minutes per host, and the exporter keeps to that,
which would make a cold start of 1,000 accounts take minutes. The accounts are therefore
spread over one fake per 100 accounts, each on its own loopback address (127.0.0.2, .3, …):
every host's budget lets its 100 connect at once.

``/metrics`` is scraped 20 times back to back as Prometheus scrapes (OpenMetrics first and
gzip: these are the times judged), then 10 times as curl would (plain text, no gzip), while a
heartbeat probe in a process of its own asks ``/healthz`` (answered on the event loop) every
5 ms: its slowest answer bounds how long a scrape kept the loop from reading a pong. The probe
then runs as long again without a scrape: the control, what the machine alone costs. Each
client then runs once more with only the first account, for its baseline: what one more
account costs it (``KB/extra``) comes out of the same run. At the end: the scale targets (see
docs/performance.md) at the largest size, each with its ratio.

    python3 benchmarks/bench_vs_sdk.py --accounts 1000 [--warmup 20] [--seconds 60] [--tls]
        [--clients sdk floor wsfloor exporter exporter-nopoll]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from exporter.simulator.pki import ServerPki

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS_PER_HOST = 100
PING_INTERVAL = 20.0
TICK = os.sysconf("SC_CLK_TCK")
CHILDREN = ("sdk", "floor", "wsfloor")  # run as child processes of this script
# The exporter kinds, each with the lines its accounts get in the YAML config beyond their connection;
# 3000 s: after the first poll at start, none falls in the measuring window.
EXPORTERS: dict[str, tuple[str, ...]] = {"exporter": (), "exporter-nopoll": ("    poll_interval: 3000",)}
KINDS = (*CHILDREN, *EXPORTERS)
T = TypeVar("T")


@dataclass(frozen=True)
class Account:
    key: str
    secret: str
    rest_url: str
    ws_url: str


@dataclass
class Figures:
    rss_mb: float
    cpu_percent: float
    threads: int
    connect_seconds: float
    scrape_p50_ms: float | None = None
    scrape_p95_ms: float | None = None
    scrape_kb: float | None = None
    plain_p50_ms: float | None = None  # the same without gzip, in the text format (curl's request)
    plain_kb: float | None = None
    probe_max_ms: float | None = None  # the slowest /healthz answer while the scrapes ran
    probe_rest_max_ms: float | None = None  # the same, as long again without a scrape
    rss_after_scrapes_mb: float | None = None  # what the scrape bodies leave behind
    held: int | None = None  # subscribed connections the fakes counted while the CPU was measured
    kb_per_extra_account: float | None = None  # (RSS at N - RSS with one account) / (N - 1)


# ---------------------------------------------------------------- /proc readings


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def status(pid: int, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------- the fake Bybit


def fake_hosts(n: int) -> list[str]:
    """The loopback addresses of the fakes for ``n`` accounts, one per 100."""
    return [f"127.0.0.{i + 2}" for i in range(math.ceil(n / ACCOUNTS_PER_HOST))]


def trust_fakes(n: int, workdir: Path) -> ServerPki:
    """Certificates for the fakes' addresses, and ``SSL_CERT_FILE`` (inherited by every client)
    pointing at the system's trust store with their CA added: each client loads as many roots
    as it would to reach Bybit."""
    from exporter.simulator.pki import make_server_pki  # here: the clients' processes import no cryptography

    pki = make_server_pki(workdir, fake_hosts(n))
    # OpenSSL's own default, not ``cafile``: that follows SSL_CERT_FILE, which an earlier size set.
    system = Path(ssl.get_default_verify_paths().openssl_cafile)
    bundle = workdir / "trust.pem"
    bundle.write_text((system.read_text() if system.is_file() else "") + pki.ca.read_text())
    os.environ["SSL_CERT_FILE"] = str(bundle)
    return pki


def start_fakes(n: int, workdir: Path, tls: ServerPki | None = None) -> tuple[list[subprocess.Popen], list[Account]]:
    fakes, accounts = [], []
    for host_index, host in enumerate(fake_hosts(n)):
        first = host_index * ACCOUNTS_PER_HOST
        keys = [(f"bench-{i:04d}", f"bench-secret-{i:04d}") for i in range(first, min(n, first + ACCOUNTS_PER_HOST))]
        spec = workdir / f"fake-{host_index}.yml"
        spec.write_text(json.dumps([{"api_key": k, "api_secret": s} for k, s in keys]))  # JSON is YAML
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter.simulator", "--listen", f"{host}:0", "--accounts", str(spec)]
            + (["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)] if tls else []),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        fakes.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        rest = re.search(r"REST (\S+)", line)
        ws = re.search(r"websocket (\S+)", line)
        if not rest or not ws:
            raise SystemExit(f"the fake did not start: {line!r}")
        accounts += [Account(k, s, rest.group(1), ws.group(1)) for k, s in keys]
    return fakes, accounts


# ---------------------------------------------------------------- the clients (run as child processes)


def sdk_client(accounts: list[Account]) -> None:
    import pybit.unified_trading as unified  # the SDK is only needed in this child process

    started = time.monotonic()
    sockets = []
    for account in accounts:
        unified.PRIVATE_WSS = account.ws_url  # read by WebSocket() when it connects
        ws = unified.WebSocket(
            channel_type="private",
            testnet=False,
            api_key=account.key,
            api_secret=account.secret,
            ping_interval=20,
            retries=3,
        )
        ws.order_stream(lambda message: None)
        sockets.append(ws)
    print(json.dumps({"connected": len(sockets), "seconds": time.monotonic() - started}), flush=True)
    signal.pause()  # until the parent ends it


def auth_message(account: Account) -> dict:
    """The private stream's auth request, signed as Bybit's docs say."""
    expires = int((time.time() + 10) * 1000)
    signature = hmac.new(account.secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256)
    return {"req_id": "a", "op": "auth", "args": [account.key, expires, signature.hexdigest()]}


SUBSCRIBE = {"req_id": "s", "op": "subscribe", "args": ["order"]}


def grid_phase(account: Account) -> float:
    """The account's own 250 ms step within the interval, as the exporter picks its ping phases."""
    from exporter.bybit.pacing import stable_phase  # only in the floors' child processes

    return stable_phase(account.key, "ping", PING_INTERVAL)


def ping_schedule(phase: float, interval: float = PING_INTERVAL) -> Callable[[], float]:
    """The seconds until the next ping on the grid ``phase + k * interval``. On the exporter's
    grid a floor's pings are spread as the exporter's are, not bunched: bunched, the same bare
    loop costs a third as much a ping (docs/performance.md)."""
    from exporter.bybit.pacing import next_slot  # only in the floors' child processes

    def until_next() -> float:
        now = time.monotonic()
        return next_slot(now, interval, phase) - now

    return until_next


async def hold_with_websockets(
    account: Account, until_next_ping: Callable[[], float], ready: Callable[[], None]
) -> None:
    """One connection with the websockets library: auth, subscribe, ``ready()``, then a JSON ping
    at once and on the schedule, reading (and dropping) whatever comes between."""
    from websockets.asyncio.client import connect  # only in the child processes
    from websockets.exceptions import ConnectionClosed

    from exporter.bybit.tls import context_for  # one context for all, as the exporter: the least a connection needs

    secure = context_for(account.ws_url)
    async with connect(
        account.ws_url, ping_interval=None, compression=None, proxy=None, max_size=2**20, ssl=secure
    ) as ws:
        await ws.send(json.dumps(auth_message(account)))
        await ws.recv()
        await ws.send(json.dumps(SUBSCRIBE))
        await ws.recv()
        ready()
        with contextlib.suppress(ConnectionClosed):  # a closed connection ends quietly, as the aiohttp floor's does
            while True:
                await ws.send(json.dumps({"op": "ping"}))
                with contextlib.suppress(TimeoutError):  # read (and drop) whatever comes until the next ping is due
                    async with asyncio.timeout(until_next_ping()):
                        async for _ in ws:
                            pass


async def hold_all(accounts: list[Account], hold: Callable[[Account, asyncio.Queue[None]], Awaitable[None]]) -> None:
    """Hold every account's connection; print one JSON line once all are up (what ``launch`` waits for)."""
    started = time.monotonic()
    ready: asyncio.Queue[None] = asyncio.Queue()
    tasks = [asyncio.create_task(hold(a, ready)) for a in accounts]
    for _ in accounts:
        await ready.get()
    print(json.dumps({"connected": len(accounts), "seconds": time.monotonic() - started}), flush=True)
    await asyncio.gather(*tasks)


async def floor_client(accounts: list[Account]) -> None:
    import aiohttp  # only in this child process, like the SDK above

    async def hold(session: aiohttp.ClientSession, account: Account, ready: asyncio.Queue[None]) -> None:
        async with session.ws_connect(account.ws_url, autoping=True) as ws:
            await ws.send_json(auth_message(account))
            await ws.receive()
            await ws.send_json(SUBSCRIBE)
            await ws.receive()
            ready.put_nowait(None)
            until_next_ping = ping_schedule(grid_phase(account))
            while not ws.closed:
                await ws.send_json({"op": "ping"})
                try:  # read (and drop) whatever comes until the next ping is due
                    async with asyncio.timeout(until_next_ping()):
                        while not ws.closed:
                            await ws.receive()
                except TimeoutError:
                    pass

    # aiohttp's default pool holds 100 connections, and a websocket keeps its connection for good
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await hold_all(accounts, lambda account, ready: hold(session, account, ready))


async def wsfloor_client(accounts: list[Account]) -> None:
    async def hold(account: Account, ready: asyncio.Queue[None]) -> None:
        await hold_with_websockets(account, ping_schedule(grid_phase(account)), lambda: ready.put_nowait(None))

    await hold_all(accounts, hold)


# ---------------------------------------------------------------- measuring one client


def launch(kind: str, accounts: list[Account], workdir: Path, port: int) -> tuple[subprocess.Popen, float]:
    """Start one client; return it and the seconds until all its connections were up."""
    if kind in EXPORTERS:
        return launch_exporter(kind, accounts, workdir, port, EXPORTERS[kind])
    spec = workdir / "accounts.json"
    spec.write_text(json.dumps([a.__dict__ for a in accounts]))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--client", kind, str(spec)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        stop(proc)
        raise SystemExit(f"the {kind} client stopped before connecting")
    return proc, json.loads(line)["seconds"]


def launch_exporter(
    kind: str, accounts: list[Account], workdir: Path, port: int, extra: tuple[str, ...]
) -> tuple[subprocess.Popen, float]:
    """Start the exporter, each account's config given the ``extra`` lines; wait until all are connected."""
    started = time.monotonic()
    env = dict(os.environ)
    lines = ["accounts:"]
    for i, a in enumerate(accounts):
        env[f"BENCH_SECRET_{i}"] = a.secret
        lines += [
            f"  - name: acct-{i:04d}",
            f"    api_key: {a.key}",
            f"    api_secret_env: BENCH_SECRET_{i}",
            f"    rest_url: {a.rest_url}",
            f"    ws_url: {a.ws_url}",
            *extra,
        ]
    config = workdir / "exporter.yml"
    config.write_text("\n".join(lines) + "\n")
    command = [sys.executable, "-m", "exporter.cli", "--config.file", str(config)]
    command += ["--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warning"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while connected(port) < len(accounts):
        if time.monotonic() > deadline or proc.poll() is not None:
            stop(proc)
            raise SystemExit(f"the {kind} did not connect every account within 600 s")
        time.sleep(0.5)
    return proc, time.monotonic() - started


def connected(port: int) -> int:
    try:
        body = scrape(port)[1].decode()
    except OSError:
        return 0
    return sum(int(float(line.split()[-1])) for line in body.splitlines() if line.startswith("bybit_dcp_ws_connected{"))


# What Prometheus sends when it scrapes: OpenMetrics first, and gzip.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def scrape(port: int, path: str = "/metrics", headers: dict[str, str] | None = None) -> tuple[float, bytes]:
    """The seconds until the whole body was read, and the body as sent (gzipped if asked for)."""
    started = time.perf_counter()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - started, body


def with_probe(port: int, work: Callable[[], T]) -> tuple[T, float]:
    """``work()`` while a heartbeat probe asks ``/healthz`` every 5 ms; its result and the slowest answer.

    ``/healthz`` is answered on the event loop, so its slowest answer while scrapes run bounds
    how long a scrape kept the loop from reading a pong. The probe runs in a process of its
    own: in a thread of this one it would also wait for this process's interpreter, busy
    reading the scrapes (up to 5 ms a turn), and blame the exporter for it.
    """
    probe = subprocess.Popen(
        [sys.executable, __file__, "--probe", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert probe.stdin is not None and probe.stdout is not None
    probe.stdout.readline()  # "ready": its first answer came back
    try:
        result = work()
    finally:
        probe.stdin.close()  # the probe stops at end of input and prints its slowest answer
        slowest = float(probe.stdout.readline() or 0.0)
        probe.wait(timeout=10)
    return result, slowest


def scrapes_with_probe(
    port: int, rounds: int, headers: dict[str, str] | None = None
) -> tuple[list[tuple[float, bytes]], float]:
    """``rounds`` scrapes back to back, with the probe's slowest answer meanwhile."""
    return with_probe(port, lambda: [scrape(port, headers=headers) for _ in range(rounds)])


def probe_healthz(port: int) -> None:
    """The probe's process: ``/healthz`` every 5 ms until standard input ends, then the slowest answer."""
    import select  # only the probe needs it

    scrape(port, "/healthz")
    print("ready", flush=True)
    slowest = 0.0
    while not select.select([sys.stdin], [], [], 0.005)[0]:  # readable: the parent closed it
        slowest = max(slowest, scrape(port, "/healthz")[0])
    print(slowest, flush=True)


def measure(kind: str, accounts: list[Account], workdir: Path, warmup: float, seconds: float) -> Figures:
    port = free_port()
    proc, connect_seconds = launch(kind, accounts, workdir, port)
    try:
        connect_seconds += wait_until_held(accounts)
        time.sleep(warmup)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        figures = Figures(status(proc.pid, "VmRSS") / 1024, 100 * cpu, status(proc.pid, "Threads"), connect_seconds)
        figures.held = held(accounts)
        if kind in EXPORTERS:
            # As Prometheus scrapes (judged), then as curl would (plain text, no gzip).
            started = time.monotonic()
            samples, probe_max = scrapes_with_probe(port, 20, PROMETHEUS_HEADERS)
            plain, plain_probe_max = scrapes_with_probe(port, 10)
            figures.rss_after_scrapes_mb = status(proc.pid, "VmRSS") / 1024
            # The control: as long again with no scrape, so the machine's own hiccups (other
            # processes on the same cores) are not taken for the exporter's.
            _, rest_max = with_probe(port, functools.partial(time.sleep, time.monotonic() - started))
            figures.probe_rest_max_ms = 1000 * rest_max
            figures.probe_max_ms = 1000 * max(probe_max, plain_probe_max)
            times = sorted(t for t, _ in samples)
            figures.scrape_p50_ms = 1000 * statistics.median(times)
            figures.scrape_p95_ms = 1000 * times[int(0.95 * (len(times) - 1))]
            figures.scrape_kb = len(samples[-1][1]) / 1024
            figures.plain_p50_ms = 1000 * statistics.median(t for t, _ in plain)
            figures.plain_kb = len(plain[-1][1]) / 1024
        return figures
    finally:
        stop(proc)


def wait_until_held(accounts: list[Account], limit: float = 30.0) -> float:
    """Seconds until the fakes hold every account's subscribed connection, at most ``limit``.

    A client says it is ready when it thinks so; the SDK does once its sockets exist, before
    its subscriptions reach the fake. "All connected" is when the fakes agree (or the limit,
    after which the ``held`` column tells the rest)."""
    started = time.monotonic()
    while held(accounts) < len(accounts) and time.monotonic() - started < limit:
        time.sleep(0.2)
    return time.monotonic() - started


def held(accounts: list[Account]) -> int:
    """The connections subscribed to ``order`` that the fakes hold right now, from their state: a
    client that lost some would look cheaper than it is."""
    total = 0
    for rest_url in dict.fromkeys(a.rest_url for a in accounts):
        with urllib.request.urlopen(f"{rest_url}/__sim__/state", timeout=30) as resp:  # trusts SSL_CERT_FILE
            state = json.loads(resp.read())
        total += sum("order" in c["topics"] for a in state["accounts"] for c in a["connections"])
    return total


def free_port() -> int:
    import socket  # only the parent needs it

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- report


def report(n: int, results: dict[str, Figures]) -> None:
    print(f"\nN = {n} accounts")
    print(
        f"{'client':<15} {'held':>6} {'RSS MB':>8} {'KB/extra':>8} {'CPU %':>7} {'threads':>8} {'connect s':>10} "
        f"{'RSS after scrapes':>17}  /metrics"
    )
    for kind, f in results.items():
        scrape_text = after_text = ""
        if f.scrape_p50_ms is not None:
            scrape_text = (
                f"p50 {f.scrape_p50_ms:.0f} ms, p95 {f.scrape_p95_ms:.0f} ms, {f.scrape_kb:.0f} KB gzipped "
                f"(plain text: p50 {f.plain_p50_ms:.0f} ms, {f.plain_kb:.0f} KB); "
                f"loop probe max {f.probe_max_ms:.0f} ms (without scrapes {f.probe_rest_max_ms:.0f} ms)"
            )
        if f.rss_after_scrapes_mb is not None:
            after_text = f"{f.rss_after_scrapes_mb:.1f}"
        per_account = f"{f.kb_per_extra_account:.1f}" if f.kb_per_extra_account is not None else "?"
        print(
            f"{kind:<15} {f.held if f.held is not None else '?':>6} {f.rss_mb:>8.1f} {per_account:>8} {f.cpu_percent:>7.2f} {f.threads:>8} "
            f"{f.connect_seconds:>10.1f} {after_text:>17}  {scrape_text}"
        )
    bases = (("sdk", "SDK"), ("floor", "floor"), ("wsfloor", "wsfloor"))
    for kind, (base, label) in itertools.product(EXPORTERS, bases):
        name = f"{kind}/{label}:"
        exporter, other = results.get(kind), results.get(base)
        if exporter is None or other is None:
            print(f"{name:<25} not run ({kind if exporter is None else base})")
        else:
            print(
                f"{name:<25} RSS {ratio(exporter.rss_mb, other.rss_mb)}, "
                f"CPU {ratio(exporter.cpu_percent, other.cpu_percent)}"
            )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "n/a"


def one_account_rss(kind: str, accounts: list[Account], workdir: Path, warmup: float) -> float:
    """``kind``'s RSS (MB) holding only the first account, after the same warm-up: its baseline, so
    that what one more account costs comes out of the same run as the figures at N."""
    port = free_port()
    proc, _ = launch(kind, accounts[:1], workdir, port)
    try:
        wait_until_held(accounts[:1])
        time.sleep(warmup)
        return status(proc.pid, "VmRSS") / 1024
    finally:
        stop(proc)


@dataclass(frozen=True)
class Target:
    """One scale target: ``kind``'s ``figure`` against ``bound`` × ``base``'s same figure (or a plain bound)."""

    text: str
    kind: str
    figure: str
    bound: float
    base: str | None = None  # a client of the same run; None: ``bound`` is in the figure's own unit
    unit: str = ""


# See docs/performance.md. The exporter as shipped polls each account every 30 s, which neither the SDK
# nor the floors do; the exporter without polls holds the same connections as the floors, like for like.
TARGETS = (
    Target("exporter CPU <= the SDK's", "exporter", "cpu_percent", 1.0, "sdk"),
    Target("exporter RSS <= the SDK's", "exporter", "rss_mb", 1.0, "sdk"),
    Target("exporter, no polls, CPU <= 1.3 x the websockets floor's", "exporter-nopoll", "cpu_percent", 1.3, "wsfloor"),
    Target("exporter, no polls, RSS <= 1.6 x the websockets floor's", "exporter-nopoll", "rss_mb", 1.6, "wsfloor"),
    Target(
        "/metrics p50 <= 40 ms (as Prometheus scrapes: OpenMetrics, gzip)", "exporter", "scrape_p50_ms", 40, unit="ms"
    ),
    Target("the loop waits <= 15 ms behind a scrape (/healthz probe max)", "exporter", "probe_max_ms", 15, unit="ms"),
    Target("<= 30 KB per extra account", "exporter", "kb_per_extra_account", 30, unit="KB"),
)


def judge(target: Target, results: dict[str, Figures]) -> tuple[str, bool | None]:
    """The target's line with its figures, and whether it was met (None: a client it needs was not run)."""
    mine = results.get(target.kind)
    value = None if mine is None else getattr(mine, target.figure)
    if target.base is None:
        if value is None:
            return f"{target.text} ({target.kind}: not measured)", None
        return f"{target.text}: {value:.1f} {target.unit}", value <= target.bound
    other = results.get(target.base)
    base = None if other is None else getattr(other, target.figure)
    if value is None or not base:
        return f"{target.text} ({target.kind} or {target.base} not run, or read 0)", None
    return f"{target.text}: {value:.2f} / {base:.2f} = {value / base:.2f} x", value <= target.bound * base


def targets(runs: dict[int, dict[str, Figures]]) -> None:
    """The scale targets at the largest size run, each with its ratio."""
    n = max(runs)
    print(f"\nTargets at N = {n}:")
    for kind, figures in runs[n].items():
        if figures.held is not None and figures.held < n:
            print(f"  NOTE    {kind} held {figures.held} of {n} connections while measured: its figures understate it")
    for target in TARGETS:
        text, met = judge(target, runs[n])
        print(f"  {'not run' if met is None else 'met    ' if met else 'MISSED '} {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1000])
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds after all connected (default 20)")
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU measuring window (default 60)")
    parser.add_argument(
        "--clients",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="the clients to run, in this order (default: all)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="the fakes serve https:// and wss:// (as Bybit does) with a throwaway CA every client trusts",
    )
    parser.add_argument("--client", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("spec", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_healthz(args.probe)
        return
    if args.client:
        accounts = [Account(**a) for a in json.loads(Path(args.spec).read_text())]
        if args.client == "sdk":
            sdk_client(accounts)
        else:
            from exporter.bybit.tls import lean_read_buffers

            lean_read_buffers()  # the floors get the exporter's TLS read buffer: the least a connection needs
            asyncio.run({"floor": floor_client, "wsfloor": wsfloor_client}[args.client](accounts))
        return
    runs: dict[int, dict[str, Figures]] = {}
    for n in args.accounts:
        with tempfile.TemporaryDirectory() as tmp:
            fakes, accounts = start_fakes(n, Path(tmp), trust_fakes(n, Path(tmp)) if args.tls else None)
            try:
                results = {}
                for kind in dict.fromkeys(args.clients):  # each once, in the order given
                    figures = results[kind] = measure(kind, accounts, Path(tmp), args.warmup, args.seconds)
                    if n > 1:
                        base = one_account_rss(kind, accounts, Path(tmp), args.warmup)
                        figures.kb_per_extra_account = 1024 * (figures.rss_mb - base) / (n - 1)
            finally:
                for fake in fakes:
                    stop(fake)
        report(n, results)
        runs[n] = results
    targets(runs)


if __name__ == "__main__":
    main()
