"""Each account's state, decided from its snapshot and its recent past (pure: time comes in).

Four states, worst first: **down** (orders at risk or the exporter blind: the stream is
down or silent, DCP fired in the last 15 minutes, a guardian let go), **unknown** (no good
DCP poll yet, or polls fail: unknown is never shown as off), **degraded** (watching works
but something needs a look: drift, re-assertion failing or blocked, flapping, a slow or late
heartbeat, a trigger whose alert still fires, a failed drill, DCP not available) and **ok**.
Every reason names the alert whose runbook entry says what to do, and where an alert has a
threshold the page uses the same one (``thresholds``, generated from the mixin's _config), so
the page and the alerts never disagree about flapping, a slow heartbeat or a trigger's weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote

from ..dcp import NOT_AVAILABLE, PRODUCTS, account_mode_name
from ..metrics import specs
from . import thresholds
from .events import Event, LastTrigger, why
from .sampler import RTT_WINDOW_SECONDS, AccountView
from .snapshot import Snapshot, quantile

DOWN, UNKNOWN, DEGRADED, OK = "down", "unknown", "degraded", "ok"
STATES = (DOWN, UNKNOWN, DEGRADED, OK)  # worst first
TRIGGER_DOWN_SECONDS = 15 * 60
# Degraded after that while BybitDcpTriggered still fires (new for triggerNewFor, then held).
TRIGGER_DEGRADED_SECONDS = max(thresholds.TRIGGER_FIRING_SECONDS, TRIGGER_DOWN_SECONDS)
# More than this many whole reconnects in FLAPPING_WINDOW_SECONDS, as BybitDcpReconnectFlapping.
FLAPPING_RECONNECTS = thresholds.RECONNECT_FLAPPING_COUNT
FLAPPING_WINDOW_SECONDS = thresholds.RECONNECT_FLAPPING_WINDOW_SECONDS
# Heartbeat lateness as BybitDcpHeartbeatGapHigh / BybitDcpHeartbeatGapCritical measure it.
HEARTBEAT_GAP_WARNING_RATIO = thresholds.HEARTBEAT_GAP_WARNING_RATIO
HEARTBEAT_GAP_CRITICAL_RATIO = thresholds.HEARTBEAT_GAP_CRITICAL_RATIO
# The 90th percentile over RTT_WINDOW_SECONDS above this, as BybitDcpHeartbeatRttHigh.
RTT_P90_HIGH_SECONDS = thresholds.HEARTBEAT_RTT_HIGH_SECONDS
DEFAULT_RUNBOOK_URL = "https://github.com/bybit-dcp-exporter/bybit-dcp-exporter/blob/main/alerts/runbook.md"


@dataclass(frozen=True)
class Links:
    """Where an account's row points: a Grafana dashboard (``--web.dashboard-url``) and the runbook."""

    dashboard_url: str | None = None
    runbook_url: str = DEFAULT_RUNBOOK_URL

    def dashboard(self, account: str) -> str | None:
        if not self.dashboard_url:
            return None
        joiner = "&" if "?" in self.dashboard_url else "?"
        return f"{self.dashboard_url}{joiner}var-account={quote(account, safe='')}"

    def runbook(self, alert: str | None) -> str:
        return f"{self.runbook_url}#{alert.lower()}" if alert else self.runbook_url


@dataclass(frozen=True)
class Reason:
    state: str
    text: str
    alert: str | None = None  # the runbook entry


@dataclass(frozen=True)
class ProductStatus:
    product: str
    enabled: bool | None  # None: unknown (no good poll, or polls fail)
    window: float | None
    desired: float | None
    drift: bool
    reassert: str  # "", or what re-assertion is doing
    guardian: bool | None  # armed; None when the exporter does not guard this product
    subscribed: bool


@dataclass(frozen=True)
class AccountStatus:
    account: str
    environment: str
    mode: str
    state: str
    reasons: tuple[Reason, ...]
    account_mode: str  # Bybit's account mode ("UTA 2.0 (5)"); "" until first read
    last_poll: float | None
    last_pong: float | None
    ping_gap: float | None
    gap_limit: float | None  # ping interval + pong timeout: past it the stream reconnects
    error_code: str | None
    error_hint: str
    reconnects_hour: int
    reconnects_flapping: int  # in the last FLAPPING_WINDOW_SECONDS
    rtt_p50: float | None
    rtt_p90: float | None
    rtt_p99: float | None
    last_trigger_at: float | None
    last_trigger: LastTrigger | None
    products: tuple[ProductStatus, ...]
    times: list[float]
    gaps: list[float]
    rtts: list[float]
    dashboard_url: str | None
    runbook_url: str


@dataclass(frozen=True)
class Board:
    now: float
    ready: bool
    accounts: tuple[AccountStatus, ...]  # worst first
    events: tuple[Event, ...]  # newest first
    names: tuple[str, ...]  # every account, for the filter
    selected: str | None  # the account filter

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for account in self.accounts:
            counts[account.state] += 1
        return counts


def ago(seconds: float | None) -> str:
    """A relative time for people: "12 s ago", "4 min ago", "never"."""
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _products(snap: Snapshot, now: float, polled: bool) -> tuple[ProductStatus, ...]:
    products = []
    for product in PRODUCTS:
        enabled = snap.get(specs.ENABLED.sample, product)
        drift = snap.flag(specs.DRIFT.sample, product)
        attempts = snap.get(specs.REASSERT_ATTEMPTS.sample, product) or 0.0
        failures = snap.get(specs.REASSERT_FAILURES.sample, product) or 0.0
        success = snap.get(specs.REASSERT_LAST_SUCCESS.sample, product)
        if snap.flag(specs.REASSERT_BLOCKED.sample, product):
            reassert = "blocked"
        elif drift and attempts:
            reassert = f"re-asserting: {attempts:g} sent, {failures:g} failed"
        elif success:
            reassert = f"re-asserted {ago(now - success)}"
        else:
            reassert = ""
        armed = snap.get(specs.GUARDIAN_ARMED.sample, product)
        products.append(
            ProductStatus(
                product,
                None if enabled is None or not polled else bool(enabled),
                snap.get(specs.WINDOW.sample, product),
                snap.get(specs.DESIRED_WINDOW.sample, product),
                drift,
                reassert,
                None if armed is None else bool(armed),
                snap.flag(specs.WS_DCP_SUBSCRIBED.sample, product),
            )
        )
    return tuple(products)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min"


def _reasons(snap: Snapshot, view: AccountView | None, now: float, reconnects: int, p90: float | None) -> list[Reason]:
    reasons: list[Reason] = []
    connected = snap.flag(specs.WS_CONNECTED.sample)
    gap = snap.get(specs.PING_GAP.sample)
    interval = snap.get(specs.WS_PING_INTERVAL.sample)
    timeout = snap.get(specs.WS_PONG_TIMEOUT.sample)
    ever = view is not None and view.watch.ever_connected
    tried = sum(snap.by(specs.WS_RECONNECTS.sample).values()) > 0
    # The stream.
    if not connected and (ever or tried):
        by_reason = {r: n for r, n in snap.by(specs.WS_RECONNECTS.sample).items() if n}
        text = f"stream disconnected (drops and retries since start: {why(by_reason)})"
        reasons.append(Reason(DOWN, text, "BybitDcpStreamDisconnected"))
    elif not connected:
        reasons.append(Reason(UNKNOWN, "stream connecting", None))
    elif gap is not None and interval is not None and timeout is not None:
        # As the heartbeat alerts reckon it: seconds overdue past the ping interval, against the
        # smallest enabled DCP window (the first to fire).
        overdue = max(gap - interval, 0.0)
        windows = [w for p, w in snap.by(specs.WINDOW.sample).items() if w > 0 and snap.flag(specs.ENABLED.sample, p)]
        window = min(windows, default=None)
        ratio = overdue / window if window else 0.0
        late = f"heartbeat {overdue:.0f} s overdue, {ratio:.0%} of the {window:g} s DCP window" if window else ""
        if gap > interval + timeout:
            reasons.append(
                Reason(DOWN, f"no pong for {gap:.0f} s (ping every {interval:g} s)", "BybitDcpHeartbeatGapCritical")
            )
        elif ratio >= HEARTBEAT_GAP_CRITICAL_RATIO:
            reasons.append(Reason(DOWN, late, "BybitDcpHeartbeatGapCritical"))
        elif ratio >= HEARTBEAT_GAP_WARNING_RATIO:
            reasons.append(Reason(DEGRADED, late, "BybitDcpHeartbeatGapHigh"))
    if reconnects > FLAPPING_RECONNECTS:
        text = f"{reconnects} reconnects in the last {_minutes(FLAPPING_WINDOW_SECONDS)}"
        reasons.append(Reason(DEGRADED, text, "BybitDcpReconnectFlapping"))
    if p90 is not None and p90 > RTT_P90_HIGH_SECONDS:
        text = f"RTT p90 {p90 * 1000:.0f} ms over {_minutes(RTT_WINDOW_SECONDS)}"
        reasons.append(Reason(DEGRADED, text, "BybitDcpHeartbeatRttHigh"))
    # The DCP-config poll: unknown is never off.
    if snap.error_code is not None:
        text = f"DCP state unknown: poll failing with {snap.error_code} – {snap.error_hint}"
        reasons.append(Reason(UNKNOWN, text, "BybitDcpConfigPollFailing"))
    elif not snap.flag(specs.UP.sample):
        reasons.append(Reason(UNKNOWN, "DCP state unknown: no good poll yet", "BybitDcpConfigPollFailing"))
    elif snap.by(specs.ENABLED.sample) and not any(snap.by(specs.ENABLED.sample).values()):
        reasons.append(Reason(DEGRADED, NOT_AVAILABLE, "BybitDcpNotEnabled"))
    # The account mode: categories DCP leaves unprotected (inverse under UTA 1.0).
    for category, unprotected in sorted(snap.by(specs.UNPROTECTED_CATEGORY.sample).items()):
        if unprotected:
            mode = _account_mode(snap)
            text = f"{category} orders are not protected by DCP under {mode}"
            reasons.append(Reason(DEGRADED, text, "BybitDcpCategoryUnprotected"))
    # Triggers.
    fired = max(snap.by(specs.LAST_TRIGGER.sample).values(), default=0.0)
    if fired and now - fired < TRIGGER_DOWN_SECONDS:
        orders = view.watch.last_trigger if view is not None else None
        what = f": {orders.total} orders cancelled" if orders is not None and orders.total else ""
        reasons.append(Reason(DOWN, f"DCP fired {ago(now - fired)}{what}", "BybitDcpTriggered"))
    elif fired and now - fired < TRIGGER_DEGRADED_SECONDS:
        reasons.append(Reason(DEGRADED, f"DCP fired {ago(now - fired)}", "BybitDcpTriggered"))
    # Windows and re-assertion.
    for product in PRODUCTS:
        if snap.flag(specs.DRIFT.sample, product):
            window = snap.get(specs.WINDOW.sample, product)
            said = f"{window:g} s" if window is not None else "not enabled"
            desired = snap.get(specs.DESIRED_WINDOW.sample, product)
            wanted = f"{desired:g} s" if desired is not None else "?"
            reasons.append(
                Reason(DEGRADED, f"{product} window drift: Bybit {said}, desired {wanted}", "BybitDcpWindowDrift")
            )
            if snap.get(specs.REASSERT_FAILURES.sample, product):
                reasons.append(Reason(DEGRADED, f"{product} re-assertion failing", "BybitDcpReassertFailing"))
    blocked = [p for p in PRODUCTS if snap.flag(specs.REASSERT_BLOCKED.sample, p)]
    if blocked:
        reasons.append(
            Reason(
                DEGRADED,
                f"re-assertion blocked for {', '.join(blocked)} (a credential error, or another writer)",
                "BybitDcpReassertBlocked",
            )
        )
    # Guardian and drills.
    armed = snap.by(specs.GUARDIAN_ARMED.sample)
    released = snap.get(specs.GUARDIAN_TRANSITIONS.sample, "released") or 0.0
    for product, held in sorted(armed.items()):
        if not held and released:
            reasons.append(Reason(DOWN, f"guardian let go of {product}: DCP may fire", "BybitDcpGuardianLetGo"))
        elif not held:
            reasons.append(Reason(DEGRADED, f"guardian of {product} never armed", "BybitDcpGuardianNeverArmed"))
    for product, ended in sorted(snap.by(specs.DRILL_LAST_RUN.sample).items()):
        if ended and not snap.flag(specs.DRILL_LAST_SUCCESS.sample, product):
            reasons.append(Reason(DEGRADED, f"{product} drill failed {ago(now - ended)}", "BybitDcpDrillFailed"))
    return reasons


def _account_mode(snap: Snapshot) -> str:
    status = snap.get(specs.UNIFIED_MARGIN_STATUS.sample)
    return "" if status is None else account_mode_name(int(status))


def account_status(
    name: str,
    snap: Snapshot | None,
    view: AccountView | None,
    now: float,
    links: Links,
) -> AccountStatus:
    """One account's row."""
    snap = snap if snap is not None else Snapshot(name)
    buckets_before = view.rtt_buckets_before if view is not None else ()
    p50 = _finite(quantile(0.5, snap.rtt_buckets, buckets_before))
    p90 = _finite(quantile(0.9, snap.rtt_buckets, buckets_before))
    p99 = _finite(quantile(0.99, snap.rtt_buckets, buckets_before))
    total = sum(snap.by(specs.WS_RECONNECTS.sample).values())
    reconnects = int(total - (view.reconnects_before if view is not None else 0.0))
    flapping = int(total - (view.flapping_before if view is not None else 0.0))
    if not snap.series:
        reasons = [Reason(UNKNOWN, "no sample yet: the account is starting", None)]
    else:
        reasons = _reasons(snap, view, now, flapping, p90)
    reasons.sort(key=lambda r: (STATES.index(r.state), r.alert is None))  # the runbook-backed one leads
    state = reasons[0].state if reasons else OK
    interval = snap.get(specs.WS_PING_INTERVAL.sample)
    timeout = snap.get(specs.WS_PONG_TIMEOUT.sample)
    fired = max(snap.by(specs.LAST_TRIGGER.sample).values(), default=0.0) or None
    polled = snap.flag(specs.UP.sample) and snap.error_code is None
    return AccountStatus(
        account=name,
        environment=snap.environment,
        mode=snap.mode,
        state=state,
        reasons=tuple(reasons),
        account_mode=_account_mode(snap),
        last_poll=snap.get(specs.LAST_POLL_SUCCESS.sample),
        last_pong=snap.get(specs.WS_LAST_PONG.sample),
        ping_gap=snap.get(specs.PING_GAP.sample),
        gap_limit=interval + timeout if interval is not None and timeout is not None else None,
        error_code=snap.error_code,
        error_hint=snap.error_hint,
        reconnects_hour=reconnects,
        reconnects_flapping=flapping,
        rtt_p50=p50,
        rtt_p90=p90,
        rtt_p99=p99,
        last_trigger_at=fired,
        last_trigger=view.watch.last_trigger if view is not None else None,
        products=_products(snap, now, polled),
        times=view.times if view is not None else [],
        gaps=view.gaps if view is not None else [],
        rtts=view.rtts if view is not None else [],
        dashboard_url=links.dashboard(name),
        runbook_url=links.runbook(reasons[0].alert if reasons else None),
    )


def board(
    accounts: list[AccountStatus],
    events: list[Event],
    names: list[str],
    *,
    now: float,
    ready: bool,
    selected: str | None = None,
) -> Board:
    """The board, worst first (then by name)."""
    ordered = sorted(accounts, key=lambda a: (STATES.index(a.state), a.account))
    return Board(now, ready, tuple(ordered), tuple(events), tuple(names), selected)
