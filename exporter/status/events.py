"""Events from the difference between two snapshots of one account (pure: snapshots and now in).

Counters are compared, not gauges alone, so what happened between two samples (a reconnect
that was over in a second, a guardian that let go and re-armed) is still told. A process
starts with its counters at 0, so the first snapshot is compared with zeros.

An event is dated by the time its series carry where they carry one (a trigger by its first
cancel's ``updatedTime``, Bybit's clock; a re-assertion by its verification; a drill by its
end), so the timeline and the account's card name one moment for one thing; otherwise by
the sample that saw it. Texts are sentences for people: reasons in words, not label values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..dcp import CATEGORY_PRODUCT
from ..metrics import specs
from .snapshot import Remembered, Snapshot

LAST_TRIGGER = specs.LAST_TRIGGER.sample
# Severity words; the page colours them, and says them.
CRITICAL, WARNING, GOOD = "critical", "warning", "good"


@dataclass(frozen=True)
class Event:
    at: float
    account: str
    kind: str  # trigger, stream_down, stream_up, stream_reconnected, poll_error, poll_ok, drift, drift_cleared,
    # reasserted, reassert_failed, guardian_armed, guardian_released, drill
    severity: str
    text: str


@dataclass
class LastTrigger:
    """The latest trigger as the sampler saw it: the orders it cancelled, by category."""

    orders: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.orders.values())


# What an event is told of: the series read from ``before`` above. A sample where none of them
# (nor the poll error) changed tells nothing.
TOLD = (
    specs.TRIGGERS.sample,
    specs.CANCELLED_ORDERS.sample,
    specs.WS_RECONNECTS.sample,
    specs.WS_CONNECTED.sample,
    specs.REASSERT_LAST_SUCCESS.sample,
    specs.DRIFT.sample,
    specs.REASSERT_FAILURES.sample,
    specs.GUARDIAN_TRANSITIONS.sample,
    specs.DRILL_LAST_RUN.sample,
)
# What the next sample is compared with: those first (the shortcut compares them as one leading
# slice), then what the sampler's history reads, which changes with every pong: the RTT count and
# sum (its mean RTT) and the heartbeat gaps' count and sum (its largest gap). Only these are kept
# between samples, not the whole snapshot: about 5 KB less per account.
REMEMBERED = (
    *TOLD,
    specs.WS_RTT.count_sample,
    specs.WS_RTT.sum_sample,
    specs.WS_HEARTBEAT_GAP.count_sample,
    specs.WS_HEARTBEAT_GAP.sum_sample,
)


@dataclass(slots=True)
class Watch:
    """What one account's events need to remember between samples."""

    previous: Remembered | Snapshot | None = None
    ever_connected: bool = False
    down_since: float | None = None
    failing_since: float | None = None
    last_trigger: LastTrigger | None = None


# What each reconnect reason (bybit_dcp_ws_reconnects_total{reason}) means, in words.
REASON_WORDS = {
    "closed": "closed by the server or the network",
    "pong_timeout": "no pong in time",
    "error": "a network or protocol error",
    "auth_failed": "Bybit refused the login",
    "subscribe_failed": "Bybit refused the subscription",
    "redirect": "redirected elsewhere, not followed",
}


def why(reasons: Mapping[str, float]) -> str:
    """Reconnect counts by reason in words: "closed by the server or the network; Bybit refused the login (3 times)"."""
    return "; ".join(
        REASON_WORDS.get(reason, reason.replace("_", " ")) + ("" if n == 1 else f" ({n:g} times)")
        for reason, n in sorted(reasons.items())
    )


def _deltas(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def _count(deltas: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(deltas.items()))


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def advance(watch: Watch, now: Snapshot, at: float) -> list[Event]:
    """The events between ``watch.previous`` and ``now``; updates ``watch``.

    Most samples of most accounts bring none: when nothing :data:`TOLD` changed, that is known
    from one compare of the remembered values (40 % of a sample's recording time at 1,000
    accounts), without reading each series (each event below needs one of them to change)."""
    remembered = now.only(REMEMBERED)
    if isinstance(watch.previous, Remembered) and remembered.agrees(watch.previous, TOLD):
        watch.previous = remembered
        return []
    before = watch.previous if watch.previous is not None else Snapshot(now.account)
    account = now.account
    events: list[Event] = []

    def say(kind: str, severity: str, text: str, when: float | None = None) -> None:
        events.append(Event(when if when else at, account, kind, severity, text))

    # DCP triggers, with the orders they cancelled.
    fired = _deltas(before.by(specs.TRIGGERS.sample), now.by(specs.TRIGGERS.sample))
    cancelled = {
        k: int(v)
        for k, v in _deltas(before.by(specs.CANCELLED_ORDERS.sample), now.by(specs.CANCELLED_ORDERS.sample)).items()
    }
    if fired:
        watch.last_trigger = LastTrigger(dict(cancelled))
        for product, n in sorted(fired.items()):
            orders = {c: k for c, k in cancelled.items() if CATEGORY_PRODUCT.get(c) == product}
            what = f"{sum(orders.values())} orders cancelled ({_count(orders)})" if orders else "orders cancelled"
            times = "" if n == 1 else f" ({n:g} triggers)"
            say("trigger", CRITICAL, f"DCP fired on {product}{times}: {what}", now.get(LAST_TRIGGER, product))
    elif cancelled:  # more orders of a trigger already told (the backfill found them)
        if watch.last_trigger is not None:
            for category, n in cancelled.items():
                watch.last_trigger.orders[category] = watch.last_trigger.orders.get(category, 0) + n
        say("trigger", CRITICAL, f"{sum(cancelled.values())} more orders cancelled by DCP ({_count(cancelled)})")

    # The private stream.
    reasons = _deltas(before.by(specs.WS_RECONNECTS.sample), now.by(specs.WS_RECONNECTS.sample))
    was, is_ = before.flag(specs.WS_CONNECTED.sample), now.flag(specs.WS_CONNECTED.sample)
    if was and not is_:
        watch.down_since = at
        said = f"dropped ({why(reasons)})" if reasons else "dropped"
        say("stream_down", CRITICAL, f"the private stream {said} and is not back yet")
    elif is_ and not was and watch.ever_connected:
        since = f" after {_duration(at - watch.down_since)}" if watch.down_since is not None else ""
        tries = f" (on the way: {why(reasons)})" if reasons else ""
        say("stream_up", GOOD, f"the private stream is back{since}{tries}")
        watch.down_since = None
    elif is_ and was and reasons:
        say("stream_reconnected", WARNING, f"the private stream dropped ({why(reasons)}) and came back")
    watch.ever_connected = watch.ever_connected or is_

    # The DCP-config poll.
    if now.error_code != before.error_code:
        if now.error_code is not None:
            watch.failing_since = watch.failing_since if watch.failing_since is not None else at
            say("poll_error", WARNING, f"DCP poll failing: {now.error_code} – {now.error_hint}")
        else:
            since = f" after {_duration(at - watch.failing_since)}" if watch.failing_since is not None else ""
            say("poll_ok", GOOD, f"DCP poll good again{since}")
            watch.failing_since = None

    # Drift and re-assertion.
    reasserted = {
        p
        for p, t in now.by(specs.REASSERT_LAST_SUCCESS.sample).items()
        if t and t != before.get(specs.REASSERT_LAST_SUCCESS.sample, p)
    }
    for product, drifting in now.by(specs.DRIFT.sample).items():
        was_drifting = before.flag(specs.DRIFT.sample, product)
        if drifting and not was_drifting:
            window = now.get(specs.WINDOW.sample, product)
            desired = now.get(specs.DESIRED_WINDOW.sample, product)
            said = f"{window:g} s" if window is not None else "not enabled"
            wanted = f"{desired:g} s" if desired is not None else "?"
            say("drift", WARNING, f"{product} window drift: Bybit reports {said}, desired {wanted}")
        elif was_drifting and not drifting and product not in reasserted:
            say("drift_cleared", GOOD, f"{product} window back to the desired value")
    for product in sorted(reasserted):
        desired = now.get(specs.DESIRED_WINDOW.sample, product)
        to = f" to {desired:g} s" if desired is not None else ""
        when = now.get(specs.REASSERT_LAST_SUCCESS.sample, product)
        say("reasserted", GOOD, f"{product} window re-asserted{to} and verified", when)
    for product, n in sorted(
        _deltas(before.by(specs.REASSERT_FAILURES.sample), now.by(specs.REASSERT_FAILURES.sample)).items()
    ):
        say("reassert_failed", WARNING, f"{product} re-assertion failed" + ("" if n == 1 else f" ({n:g} times)"))

    # The guardian's switch.
    moves = _deltas(before.by(specs.GUARDIAN_TRANSITIONS.sample), now.by(specs.GUARDIAN_TRANSITIONS.sample))
    if moves.get("released"):
        say("guardian_released", CRITICAL, "guardian let go: the bot went silent, DCP may fire")
    if moves.get("armed"):
        say("guardian_armed", GOOD, "guardian armed: the bot shows signs of life")

    # Drills.
    for product, ended in sorted(now.by(specs.DRILL_LAST_RUN.sample).items()):
        if ended and ended != before.get(specs.DRILL_LAST_RUN.sample, product):
            delay = now.get(specs.DRILL_TRIGGER_DELAY.sample, product)
            if now.flag(specs.DRILL_LAST_SUCCESS.sample, product):
                after = f": DCP cancelled the canary {delay:.1f} s after the cut" if delay is not None else ""
                say("drill", GOOD, f"{product} drill passed{after}", ended)
            else:
                say("drill", CRITICAL, f"{product} drill failed: see the exporter's log", ended)

    watch.previous = remembered
    return events
