"""A scripted hour in the life of a trading account, for ``--demo`` and drills: one table.

``TIMELINE`` is the story, minute by minute, and the only place it is written: the runner
below plays it, ``docs/demo.md`` prints it (a test checks the two agree). It cycles every
``CYCLE_MINUTES``: healthy, a slow heartbeat with one dropped connection (degraded), a
window changed behind the exporter's back and put back (drift and re-assertion), the
private stream unreachable for three minutes (down), then a trading bot that holds the
only protected (``dcp.*``) connection and vanishes, so DCP fires and cancels the resting
orders (triggered). Between them the account is healthy for long enough that the status
page shows ok again and the alerts the phase raised clear, given their ``for`` and
``keep_firing_for`` in ``mixin/config.libsonnet``: the cycle is as long as it is because
BybitDcpTriggered is held 30 minutes after its first minute, and the reconnects of an
outage count against BybitDcpReconnectFlapping for 15 minutes.

Resting orders are topped up all along (3 per category, ``linear`` and ``spot``), so the
trigger has something to cancel. The runner keeps the pace on the simulator's clock and
can be started at, or jumped to, any minute of the cycle (the screenshots do).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass

import websockets

from .clock import wait_event
from .server import Simulator
from .signatures import ws_auth_args

log = logging.getLogger("exporter.simulator.scenario")

ORDER_CATEGORIES = ("linear", "spot")
DRIFT_PRODUCT = "SPOT"
DRIFT_WINDOW = 30
HEALTHY_LATENCY = (0.005, 0.120)  # seconds a pong is late, drawn afresh every LATENCY_EVERY
SLOW_LATENCY = (0.8, 1.2)  # above BybitDcpHeartbeatRttHigh's 0.5 s, below the demo's 2.5 s pong timeout
LATENCY_EVERY = 15.0
BOT_HOLDS = 30.0  # seconds the trading bot keeps its dcp.* connection before it vanishes


@dataclass(frozen=True)
class Phase:
    """From minute ``start`` of the cycle until the next phase's start."""

    start: float
    name: str
    does: str  # what the simulator does, in words
    page: str  # what the status page shows
    alerts: str  # what the alerts do (with the mixin's default for/keep_firing_for)
    latency: tuple[float, float] = HEALTHY_LATENCY
    unreachable: bool = False  # every websocket handshake refused (the stream's host is down)
    action: str = ""  # done once on entering the phase: "close", "drift" or "bot"
    shot: str = ""  # the screenshot of this phase, docs/demo-<shot>.png ("" = none)
    state: str = ""  # ... and the account's state on the page it shows


TIMELINE: tuple[Phase, ...] = (
    Phase(
        0,
        "healthy",
        "pongs 5-120 ms late; 3 resting orders per category",
        "ok: polls, stream and windows as desired",
        "none",
        shot="healthy",
        state="ok",
    ),
    Phase(
        4,
        "slow heartbeat",
        "pongs 0.8-1.2 s late",
        "degraded: RTT p90 above 0.5 s over 5 min",
        "BybitDcpHeartbeatRttHigh pending; it never fires (its for: 10m is longer than the slow spell)",
        latency=SLOW_LATENCY,
        shot="degraded",
        state="degraded",
    ),
    Phase(
        6,
        "one drop",
        "the server closes the stream once (code 1001); pongs still slow",
        "degraded; the event: the private stream dropped (closed by the server or the network) and came back",
        "none (one reconnect)",
        latency=SLOW_LATENCY,
        action="close",
    ),
    Phase(
        8,
        "healthy",
        "pongs fast again",
        "degraded until the slow pongs leave the 5-minute window (about minute 14), then ok",
        "none",
    ),
    Phase(
        15,
        "drift",
        f"{DRIFT_PRODUCT}'s window set to {DRIFT_WINDOW} s behind the exporter's back",
        f"degraded for about 20 s ({DRIFT_PRODUCT} window drift); the exporter re-asserts 10 s, then ok with "
        "'re-asserted'",
        "BybitDcpWindowReasserted (info) for 15 min; BybitDcpWindowDrift never fires (for: 10m)",
        action="drift",
    ),
    Phase(16, "healthy", "nothing", "ok", "BybitDcpWindowReasserted (info) until about minute 30"),
    Phase(
        19,
        "down",
        "the private stream's host is unreachable: connections dropped, handshakes answered 503; REST answers",
        "down: stream disconnected; the heartbeat gap grows",
        "BybitDcpHeartbeatGapHigh and BybitDcpHeartbeatGapCritical fire after a minute; "
        "BybitDcpReconnectFlapping fires about minute 24; BybitDcpStreamDisconnected stays pending (for: 5m)",
        unreachable=True,
        shot="down",
        state="down",
    ),
    Phase(
        22,
        "back",
        "handshakes accepted again; the exporter is back within its backoff (at most a minute)",
        "degraded: more than 3 reconnects in the last 15 min",
        "the heartbeat-gap alerts clear 5 min after the stream is back; BybitDcpReconnectFlapping keeps firing",
    ),
    Phase(
        24,
        "triggered",
        f"a trading bot connects, subscribes dcp.future and dcp.spot, pings for {BOT_HOLDS:g} s and vanishes; "
        "DCP fires 10 s later and cancels the 6 resting orders; new ones are placed",
        "down: DCP fired, 6 orders cancelled (linear 3, spot 3)",
        "BybitDcpTriggered fires at once for DERIVATIVES and for SPOT, each held 30 min after its first minute",
        action="bot",
        shot="triggered",
        state="down",
    ),
    Phase(
        25,
        "after the trigger",
        "nothing",
        "down for 15 min after the trigger (to about minute 40), then degraded while BybitDcpTriggered fires",
        "BybitDcpReconnectFlapping clears about minute 46; BybitDcpTriggered clears about minute 56",
    ),
    Phase(56, "healthy", "nothing", "ok", "none: every alert has cleared"),
)
CYCLE_MINUTES = 60.0


def phase_at(minute: float) -> Phase:
    """The phase at ``minute`` of the cycle (any minute: it wraps)."""
    minute %= CYCLE_MINUTES
    return [p for p in TIMELINE if p.start <= minute][-1]


def top_up_orders(sim: Simulator, api_key: str, per_category: int, rng: random.Random) -> None:
    """Place resting limit orders until each category has ``per_category`` of them."""
    acct = sim.account(api_key)
    for category in ORDER_CATEGORIES:
        missing = per_category - len(acct.active_orders((category,)))
        for _ in range(max(missing, 0)):
            side = rng.choice(("Buy", "Sell"))
            price = 60000 + rng.randint(-3000, 3000) if side == "Buy" else 70000 + rng.randint(-3000, 3000)
            sim.place_order(api_key, category=category, symbol="BTCUSDT", side=side, qty="0.01", price=str(price))


async def protected_session(sim: Simulator, api_key: str, topics=("dcp.future", "dcp.spot"), hold: float = 1.0) -> bool:
    """Be a trading bot for ``hold`` seconds: auth, subscribe ``dcp.*``, ping, then vanish.

    Returns False if the account cannot be driven (an RSA account: no secret to sign with).
    """
    acct = sim.account(api_key)
    if not acct.api_secret:
        return False
    async with websockets.connect(sim.ws_url, open_timeout=5, close_timeout=2) as ws:
        expires = int(sim.clock.time() * 1000) + 10_000
        auth = {"req_id": "bot-auth", "op": "auth", "args": ws_auth_args(api_key, acct.api_secret, expires)}
        await ws.send(json.dumps(auth))
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"req_id": "bot-sub", "op": "subscribe", "args": list(topics)}))
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"req_id": "bot-ping", "op": "ping"}))
        await asyncio.wait_for(ws.recv(), 5)
        await sim.clock.sleep(hold)
    return True


class Scenario:
    """Plays ``TIMELINE`` on one account of ``sim`` until ``stop`` is set.

    Every wait is bounded and wakes up on ``stop``; the pace is kept by the simulator's
    clock. ``start_minute`` starts the cycle part-way; :meth:`jump` moves to a minute at any
    time (entering a phase does its action, as when it comes in its turn).
    """

    def __init__(
        self,
        sim: Simulator,
        api_key: str,
        *,
        rng: random.Random | None = None,
        orders_per_category: int = 3,
        start_minute: float = 0.0,
        step: float = 1.0,
        bot_holds: float = BOT_HOLDS,
    ) -> None:
        self.sim, self.api_key = sim, api_key
        self.rng = rng if rng is not None else random.Random()
        self.orders_per_category = orders_per_category
        self.step, self.bot_holds = step, bot_holds
        self._origin = sim.clock.time() - start_minute * 60.0
        self._phase: Phase | None = None
        self._next_latency = 0.0
        self._bot: asyncio.Task[None] | None = None
        self._unreachable = False

    def minute(self) -> float:
        """The minute of the cycle now."""
        return (self.sim.clock.time() - self._origin) / 60.0 % CYCLE_MINUTES

    def jump(self, minute: float) -> None:
        self._origin = self.sim.clock.time() - minute * 60.0
        self._phase = None  # entered afresh at the next step
        self._next_latency = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        clock = self.sim.clock
        try:
            while not stop.is_set():
                self.tick()
                if await wait_event(clock, stop, self.step):
                    return
        finally:
            self.sim.streams_unreachable(False)
            if self._bot is not None:
                self._bot.cancel()
                await asyncio.gather(self._bot, return_exceptions=True)

    def tick(self) -> None:
        """One step: enter a new phase if one began, keep its latency and reachability, top up orders."""
        sim, now = self.sim, self.sim.clock.time()
        phase = phase_at(self.minute())
        if phase is not self._phase:
            self._phase = phase
            log.info("scenario: minute %.1f, %s: %s", self.minute(), phase.name, phase.does)
            self._next_latency = 0.0
            self._act(phase.action)
        if self._unreachable != phase.unreachable:
            self._unreachable = phase.unreachable
            sim.streams_unreachable(phase.unreachable)
        if now >= self._next_latency:
            sim.set_pong_latency(self.api_key, self.rng.uniform(*phase.latency))
            self._next_latency = now + LATENCY_EVERY
        top_up_orders(sim, self.api_key, self.orders_per_category, self.rng)

    def _act(self, action: str) -> None:
        sim = self.sim
        if action == "close":
            sim.close_connections(self.api_key, code=1001, reason="scenario: server restart")
        elif action == "drift" and DRIFT_PRODUCT in sim.account(self.api_key).dcp:
            sim.set_dcp(self.api_key, DRIFT_PRODUCT, DRIFT_WINDOW)
        elif action == "bot" and (self._bot is None or self._bot.done()):
            self._bot = asyncio.create_task(self._be_a_bot(), name="scenario-bot")

    async def _be_a_bot(self) -> None:
        try:
            await protected_session(self.sim, self.api_key, hold=self.bot_holds)
        except (TimeoutError, OSError, websockets.WebSocketException) as exc:
            log.warning("scenario: the trading bot's connection failed: %s", exc)


async def run_demo_scenario(sim: Simulator, api_key: str, *, stop: asyncio.Event, **options) -> None:
    """Play the timeline until ``stop`` is set (``options``: those of :class:`Scenario`)."""
    await Scenario(sim, api_key, **options).run(stop)


def _minute(m: float) -> str:
    return f"{m:g}"


def timeline_markdown() -> str:
    """``TIMELINE`` as the table docs/demo.md prints (a test keeps the two equal)."""
    rows = [
        "| minutes | phase | the simulator | the status page | the alerts |",
        "|---|---|---|---|---|",
    ]
    ends = [p.start for p in TIMELINE[1:]] + [CYCLE_MINUTES]
    for phase, end in zip(TIMELINE, ends, strict=True):
        rows.append(
            f"| {_minute(phase.start)}–{_minute(end)} | {phase.name} | {phase.does} | {phase.page} | {phase.alerts} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(timeline_markdown(), end="")
