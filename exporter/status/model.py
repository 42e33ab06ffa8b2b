"""Each account's state, decided from its snapshot and its recent past (pure: time comes in).

Four states, worst first: **down** (orders at risk or the exporter blind: the stream is
down or silent, DCP fired in the last 15 minutes, a guardian let go), **unknown** (no good
DCP poll yet, or polls fail: unknown is never shown as off), **degraded** (watching works
but something needs a look: drift, re-assertion failing or blocked, flapping, a slow or late
heartbeat, a trigger in the last hour, a failed drill, DCP not available) and **ok**. Every
reason names the alert whose runbook entry says what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote

from ..dcp import NOT_AVAILABLE, PRODUCTS
from .events import Event, LastTrigger
from .sampler import AccountView
from .snapshot import Snapshot, quantile

DOWN, UNKNOWN, DEGRADED, OK = "down", "unknown", "degraded", "ok"
STATES = (DOWN, UNKNOWN, DEGRADED, OK)  # worst first
TRIGGER_DOWN_SECONDS = 15 * 60
TRIGGER_DEGRADED_SECONDS = 3600
FLAPPING_RECONNECTS = 3  # more than this in an hour, as BybitDcpReconnectFlapping
RTT_P99_HIGH_SECONDS = 1.0
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
    last_poll: float | None
    last_pong: float | None
    ping_gap: float | None
    gap_limit: float | None  # ping interval + pong timeout: past it the stream reconnects
    error_code: str | None
    error_hint: str
    reconnects_hour: int
    rtt_p50: float | None
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
        enabled = snap.get("bybit_dcp_enabled", product)
        drift = snap.flag("bybit_dcp_window_drift", product)
        attempts = snap.get("bybit_dcp_reassert_attempts_total", product) or 0.0
        failures = snap.get("bybit_dcp_reassert_failures_total", product) or 0.0
        success = snap.get("bybit_dcp_reassert_last_success_timestamp_seconds", product)
        if snap.flag("bybit_dcp_reassert_blocked", product):
            reassert = "blocked"
        elif drift and attempts:
            reassert = f"re-asserting: {attempts:g} sent, {failures:g} failed"
        elif success:
            reassert = f"re-asserted {ago(now - success)}"
        else:
            reassert = ""
        armed = snap.get("bybit_dcp_guardian_armed", product)
        products.append(
            ProductStatus(
                product,
                None if enabled is None or not polled else bool(enabled),
                snap.get("bybit_dcp_window_seconds", product),
                snap.get("bybit_dcp_desired_window_seconds", product),
                drift,
                reassert,
                None if armed is None else bool(armed),
                snap.flag("bybit_dcp_ws_dcp_subscribed", product),
            )
        )
    return tuple(products)


def _reasons(snap: Snapshot, view: AccountView | None, now: float, reconnects: int, p99: float | None) -> list[Reason]:
    reasons: list[Reason] = []
    connected = snap.flag("bybit_dcp_ws_connected")
    gap = snap.get("bybit_dcp_ws_ping_gap_seconds")
    interval = snap.get("bybit_dcp_ws_ping_interval_seconds")
    timeout = snap.get("bybit_dcp_ws_pong_timeout_seconds")
    ever = view is not None and view.watch.ever_connected
    tried = sum(snap.by("bybit_dcp_ws_reconnects_total").values()) > 0
    # The stream.
    if not connected and (ever or tried):
        by_reason = {r: n for r, n in snap.by("bybit_dcp_ws_reconnects_total").items() if n}
        last = ", ".join(f"{r} {n:g}" for r, n in sorted(by_reason.items()))
        reasons.append(
            Reason(DOWN, f"stream disconnected (reconnects since start: {last})", "BybitDcpStreamDisconnected")
        )
    elif not connected:
        reasons.append(Reason(UNKNOWN, "stream connecting", None))
    elif gap is not None and interval is not None and timeout is not None:
        if gap > interval + timeout:
            reasons.append(
                Reason(DOWN, f"no pong for {gap:.0f} s (ping every {interval:g} s)", "BybitDcpHeartbeatGapCritical")
            )
        elif gap > interval + timeout / 2:
            reasons.append(
                Reason(DEGRADED, f"ping gap {gap:.1f} s (ping every {interval:g} s)", "BybitDcpHeartbeatGapHigh")
            )
    if reconnects > FLAPPING_RECONNECTS:
        reasons.append(Reason(DEGRADED, f"{reconnects} reconnects in the last hour", "BybitDcpReconnectFlapping"))
    if p99 is not None and p99 > RTT_P99_HIGH_SECONDS:
        reasons.append(Reason(DEGRADED, f"RTT p99 {p99 * 1000:.0f} ms over 5 min", "BybitDcpHeartbeatRttHigh"))
    # The DCP-config poll: unknown is never off.
    if snap.error_code is not None:
        text = f"DCP state unknown: poll failing with {snap.error_code} – {snap.error_hint}"
        reasons.append(Reason(UNKNOWN, text, "BybitDcpConfigPollFailing"))
    elif not snap.flag("bybit_dcp_up"):
        reasons.append(Reason(UNKNOWN, "DCP state unknown: no good poll yet", "BybitDcpConfigPollFailing"))
    elif snap.by("bybit_dcp_enabled") and not any(snap.by("bybit_dcp_enabled").values()):
        reasons.append(Reason(DEGRADED, NOT_AVAILABLE, "BybitDcpNotEnabled"))
    # Triggers.
    fired = max(snap.by("bybit_dcp_last_trigger_timestamp_seconds").values(), default=0.0)
    if fired and now - fired < TRIGGER_DOWN_SECONDS:
        orders = view.watch.last_trigger if view is not None else None
        what = f": {orders.total} orders cancelled" if orders is not None and orders.total else ""
        reasons.append(Reason(DOWN, f"DCP fired {ago(now - fired)}{what}", "BybitDcpTriggered"))
    elif fired and now - fired < TRIGGER_DEGRADED_SECONDS:
        reasons.append(Reason(DEGRADED, f"DCP fired {ago(now - fired)}", "BybitDcpTriggered"))
    # Windows and re-assertion.
    for product in PRODUCTS:
        if snap.flag("bybit_dcp_window_drift", product):
            window = snap.get("bybit_dcp_window_seconds", product)
            said = f"{window:g} s" if window is not None else "not enabled"
            desired = snap.get("bybit_dcp_desired_window_seconds", product)
            wanted = f"{desired:g} s" if desired is not None else "?"
            reasons.append(
                Reason(DEGRADED, f"{product} window drift: Bybit {said}, desired {wanted}", "BybitDcpWindowDrift")
            )
            if snap.get("bybit_dcp_reassert_failures_total", product):
                reasons.append(Reason(DEGRADED, f"{product} re-assertion failing", "BybitDcpReassertFailing"))
    blocked = [p for p in PRODUCTS if snap.flag("bybit_dcp_reassert_blocked", p)]
    if blocked:
        reasons.append(
            Reason(
                DEGRADED,
                f"re-assertion blocked for {', '.join(blocked)} (a credential error, or another writer)",
                "BybitDcpReassertBlocked",
            )
        )
    # Guardian and drills.
    armed = snap.by("bybit_dcp_guardian_armed")
    released = snap.get("bybit_dcp_guardian_transitions_total", "released") or 0.0
    for product, held in sorted(armed.items()):
        if not held and released:
            reasons.append(Reason(DOWN, f"guardian let go of {product}: DCP may fire", "BybitDcpGuardianLetGo"))
        elif not held:
            reasons.append(Reason(DEGRADED, f"guardian of {product} never armed", "BybitDcpGuardianNeverArmed"))
    for product, ended in sorted(snap.by("bybit_dcp_drill_last_run_timestamp_seconds").items()):
        if ended and not snap.flag("bybit_dcp_drill_last_success", product):
            reasons.append(Reason(DEGRADED, f"{product} drill failed {ago(now - ended)}", "BybitDcpDrillFailed"))
    return reasons


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
    p99 = _finite(quantile(0.99, snap.rtt_buckets, buckets_before))
    total = sum(snap.by("bybit_dcp_ws_reconnects_total").values())
    reconnects = int(total - (view.reconnects_before if view is not None else 0.0))
    if not snap.series:
        reasons = [Reason(UNKNOWN, "no sample yet: the account is starting", None)]
    else:
        reasons = _reasons(snap, view, now, reconnects, p99)
    reasons.sort(key=lambda r: (STATES.index(r.state), r.alert is None))  # the runbook-backed one leads
    state = reasons[0].state if reasons else OK
    interval = snap.get("bybit_dcp_ws_ping_interval_seconds")
    timeout = snap.get("bybit_dcp_ws_pong_timeout_seconds")
    fired = max(snap.by("bybit_dcp_last_trigger_timestamp_seconds").values(), default=0.0) or None
    polled = snap.flag("bybit_dcp_up") and snap.error_code is None
    return AccountStatus(
        account=name,
        environment=snap.environment,
        mode=snap.mode,
        state=state,
        reasons=tuple(reasons),
        last_poll=snap.get("bybit_dcp_last_poll_success_timestamp_seconds"),
        last_pong=snap.get("bybit_dcp_ws_last_pong_timestamp_seconds"),
        ping_gap=snap.get("bybit_dcp_ws_ping_gap_seconds"),
        gap_limit=interval + timeout if interval is not None and timeout is not None else None,
        error_code=snap.error_code,
        error_hint=snap.error_hint,
        reconnects_hour=reconnects,
        rtt_p50=p50,
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
