"""When to put the configured DCP window back: the pure decision core (sans-I/O).

Changing an account's risk setting automatically must be boringly safe, so every rule
lives here, where it can be tested without sockets, sleeps or Bybit:

- only products with a desired window are ever considered, and only windows in
  [3, 300] (Bybit's range) are ever sent;
- a set is asked for only when Bybit reports something other than the desired window,
  so replicas sharing one desired state never fight;
- at most one set per product per settle period: after a set the product waits the
  settle time, and the first observation after it verifies the set;
- failures (an error answer, or a verification that still shows drift) back off
  exponentially, ``settle * 2**n`` capped at ``max_backoff``; a verified success
  resets the count;
- a key, signature, permission, ban, region, IP or route error (``errors.AUTH_CODES``)
  blocks the whole account until the configuration or the credentials change, which
  creates a new core;
- ``off`` and ``dry-run`` never ask for a set; dry-run describes the request instead;
- one writer, or none: a set Bybit accepted and then shows undone (by the verification or
  any later poll) within :data:`CONTENTION_PERIOD_SECONDS` is a strike. Something else
  writes the product's window (another exporter with another desired window, a bot, a
  person in the web UI) when, within that period, the strikes reach
  :data:`CONTENTION_STRIKES`, or reach one less and the set after them is verified: of two
  writers the one that sees the last undoing stops first, so the other's last set holds and
  it sees one strike less; winning a contest is no reason to carry on, so it stops too.
  The product is then blocked as ``contended``: no further set, whatever the drift, until
  Bybit has reported one unchanged setting for :data:`CONTENTION_QUIET_SECONDS` (the other
  writer stopped) or the process restarts. Two writers with different windows so stand down
  after a few sets each instead of flipping the window for ever. A Bybit that accepts sets
  and does not apply them looks the same from here, and is treated the same way: writing
  more would not help either.

The core is clock-injected: every call takes ``now`` (seconds). Time never runs
backwards inside it (it keeps the latest ``now`` it has seen), so a wall clock that
steps back cannot shorten a settle period or a backoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..bybit.errors import AUTH_CODES
from ..bybit.models import DcpSetting, set_dcp_request
from ..bybit.pacing import NO_JITTER, backoff_delay
from ..dcp import MAX_WINDOW, MIN_SETTLE_SECONDS, MIN_WINDOW, REASSERT_BLOCK_REASONS, REASSERT_POLICIES, valid_window

DEFAULT_MAX_BACKOFF = 1800.0  # 30 minutes

# One writer, or none (see the module docstring). Three accepted sets undone within ten
# minutes is no accident of timing: with the 10 s settle time and the backoff after each
# failed verification, one contest of two writers reaches it within about three minutes.
CONTENTION_STRIKES = 3
CONTENTION_PERIOD_SECONDS = 600.0
# Resume only after Bybit reported one unchanged setting for fifteen minutes: longer than
# the period, so a resumed writer that is undone again can strike at most a few more times
# an hour. A restart resumes at once (a new core), which is the operator's way out.
CONTENTION_QUIET_SECONDS = 900.0
CREDENTIALS, CONTENDED = REASSERT_BLOCK_REASONS


# --- drift: what Bybit reports compared with what the desk decided -----------------


@dataclass(frozen=True)
class InSync:
    product: str
    window: int
    kind: str = field(default="in_sync", init=False)
    drifting: bool = field(default=False, init=False)


@dataclass(frozen=True)
class DifferentWindow:
    product: str
    reported: int
    desired: int
    kind: str = field(default="different_window", init=False)
    drifting: bool = field(default=True, init=False)


@dataclass(frozen=True)
class NotEnabled:
    """Bybit does not list the product (DCP not enabled by the account manager), or lists it OFF."""

    product: str
    desired: int
    status: str | None = None  # None: not listed at all; else the status Bybit reports (e.g. "OFF")
    kind: str = field(default="not_enabled", init=False)
    drifting: bool = field(default=True, init=False)


Drift = InSync | DifferentWindow | NotEnabled


def drift_of(product: str, desired: int, reported: Mapping[str, DcpSetting]) -> Drift:
    setting = reported.get(product)
    if setting is None:
        return NotEnabled(product, desired)
    if not setting.on:
        return NotEnabled(product, desired, setting.status)
    if setting.window == desired:
        return InSync(product, desired)
    return DifferentWindow(product, setting.window, desired)


def reported_window(drift: Drift) -> int | None:
    """The window Bybit reports for the product, None when it is not enabled."""
    if isinstance(drift, InSync):
        return drift.window
    if isinstance(drift, DifferentWindow):
        return drift.reported
    return None


# --- actions: what the I/O shell should do ----------------------------------------


@dataclass(frozen=True)
class SetWindow:
    """Send ``POST /v5/order/disconnected-cancel-all`` now, then report the result."""

    product: str
    window: int
    old: int | None  # what Bybit reported; None = product not enabled


@dataclass(frozen=True)
class DryRun:
    """What enforce would send (policy dry-run): log it, send nothing."""

    product: str
    old: int | None
    new: int

    def request(self) -> tuple[str, str, str]:
        return set_dcp_request(self.product, self.new)


@dataclass(frozen=True)
class Wait:
    """Drift, but not now: ``reason`` is settling, in_flight or backoff; ``until`` when known."""

    product: str
    reason: str
    until: float | None = None


@dataclass(frozen=True)
class Blocked:
    """Drift, but re-assertion is stopped: for the account (``reason`` credentials: a key or
    permission error, ``code`` Bybit's) or for this product (``reason`` contended: another
    writer, ``code`` "contended")."""

    product: str
    code: str
    reason: str = CREDENTIALS


Action = SetWindow | DryRun | Wait | Blocked


# --- events: outcomes of earlier sets, learnt from this observation ----------------


@dataclass(frozen=True)
class Verified:
    """The first observation after the settle time shows the desired window."""

    product: str
    window: int


@dataclass(frozen=True)
class VerifyFailed:
    """The set was accepted, but after the settle time Bybit still reports drift."""

    product: str
    drift: Drift
    failures: int
    retry_at: float


@dataclass(frozen=True)
class Contended:
    """Accepted sets were undone ``strikes`` times within the period: the product stops here."""

    product: str
    strikes: int
    drift: Drift


@dataclass(frozen=True)
class Resumed:
    """A contended product's setting stayed unchanged for the quiet time: sets may resume."""

    product: str
    quiet_seconds: float


Event = Verified | VerifyFailed | Contended | Resumed


@dataclass(frozen=True)
class Decision:
    """Result of one observation.

    ``drift`` holds every desired product (empty after a failed poll: nothing is known);
    ``changed`` the products whose drift differs from the previous observation (for
    logging once per change, not every poll).
    """

    drift: dict[str, Drift]
    changed: frozenset[str]
    actions: tuple[Action, ...]
    events: tuple[Event, ...]

    def sets(self) -> list[SetWindow]:
        return [a for a in self.actions if isinstance(a, SetWindow)]


@dataclass(frozen=True)
class SetFailed:
    """What :meth:`Reasserter.record_result` learnt from an error answer."""

    product: str
    code: str
    failures: int
    retry_at: float
    blocked: bool


@dataclass
class _Product:
    failures: int = 0
    sent_at: float | None = None  # when the last SetWindow was handed out
    in_flight: bool = False  # a SetWindow was handed out and its answer is not recorded yet
    verifying: bool = False  # the answer was ok; the next observation after settle verifies it
    retry_at: float = float("-inf")  # no SetWindow before this time
    last_drift: Drift | None = None
    dry_run_logged: Drift | None = None
    accepted_at: float | None = None  # a set Bybit accepted, not yet seen undone (a strike when it is)
    strikes: list[float] = field(default_factory=list)  # when accepted sets were seen undone
    contended: bool = False
    stable_since: float = float("-inf")  # since when Bybit reports `last_drift` unchanged


class Reasserter:
    """Decides, per desired product, whether to set the window now.

    Create a new instance whenever the account's configuration or credentials change:
    that is what clears a block after an authentication or permission error.
    """

    def __init__(
        self,
        desired: Mapping[str, int],
        policy: str = "off",
        settle_seconds: float = MIN_SETTLE_SECONDS,
        *,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        contention_strikes: int = CONTENTION_STRIKES,
        contention_period: float = CONTENTION_PERIOD_SECONDS,
        contention_quiet: float = CONTENTION_QUIET_SECONDS,
    ) -> None:
        if policy not in REASSERT_POLICIES:
            raise ValueError(f"reassert policy must be one of {', '.join(REASSERT_POLICIES)}, not {policy!r}")
        for product, window in desired.items():
            if not valid_window(window):
                raise ValueError(
                    f"desired window for {product} must be an integer in [{MIN_WINDOW}, {MAX_WINDOW}], not {window!r}"
                )
        if not settle_seconds > 0:
            raise ValueError("settle_seconds must be positive")
        if not max_backoff >= settle_seconds:
            raise ValueError("max_backoff must be at least settle_seconds")
        if contention_strikes < 2 or not contention_period > 0 or not contention_quiet > 0:
            raise ValueError("contention needs strikes >= 2 and a positive period and quiet time")
        self.contention_strikes = contention_strikes
        self.contention_period = float(contention_period)
        self.contention_quiet = float(contention_quiet)
        self.desired: dict[str, int] = dict(desired)
        self.policy = policy
        self.settle = float(settle_seconds)
        self.max_backoff = float(max_backoff)
        self.blocked_code: str | None = None
        self._now = float("-inf")
        self._state = {product: _Product() for product in self.desired}

    # -- queries ------------------------------------------------------------------

    @property
    def blocked(self) -> bool:
        return self.blocked_code is not None

    def contended(self, product: str) -> bool:
        """True while ``product`` is blocked because another writer undoes its sets."""
        state = self._state.get(product)
        return state.contended if state else False

    def failures(self, product: str) -> int:
        state = self._state.get(product)
        return state.failures if state else 0

    def backoff(self, failures: int) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures."""
        return backoff_delay(failures, self.settle, self.max_backoff, floor=NO_JITTER)

    # -- inputs -------------------------------------------------------------------

    def _tick(self, now: float) -> float:
        self._now = max(self._now, float(now))
        return self._now

    def decide(self, reported: Mapping[str, DcpSetting] | None, now: float) -> Decision:
        """One observation: Bybit's settings by product, or None for a failed poll."""
        now = self._tick(now)
        if reported is None:  # nothing is known: no drift, no verification, no set
            return Decision({}, frozenset(), (), ())

        drift: dict[str, Drift] = {}
        changed: set[str] = set()
        actions: list[Action] = []
        events: list[Event] = []
        for product, desired in self.desired.items():
            state = self._state[product]
            current = drift_of(product, desired, reported)
            drift[product] = current
            if current != state.last_drift:
                changed.add(product)
                state.last_drift = current
                state.stable_since = now

            if state.in_flight:
                actions.append(Wait(product, "in_flight"))
                continue
            if state.verifying:
                assert state.sent_at is not None
                settled_at = state.sent_at + self.settle
                if now < settled_at:
                    actions.append(Wait(product, "settling", settled_at))
                    continue
                state.verifying = False
                if isinstance(current, InSync):
                    state.failures = 0
                    state.retry_at = now
                    events.append(Verified(product, desired))
                else:
                    state.failures += 1
                    state.retry_at = max(state.retry_at, now + self.backoff(state.failures))
                    events.append(VerifyFailed(product, current, state.failures, state.retry_at))

            verified = bool(events) and events[-1] == Verified(product, desired)
            contest = self._contest(product, state, current, now, verified)
            if contest is not None:
                events.append(contest)
            if state.contended:
                if current.drifting and self.policy == "enforce":
                    actions.append(Blocked(product, CONTENDED, CONTENDED))
                continue

            if isinstance(current, InSync):
                state.dry_run_logged = None
                continue
            if self.policy == "off":
                continue
            if self.blocked_code is not None:
                actions.append(Blocked(product, self.blocked_code))
                continue
            if self.policy == "dry-run":
                if state.dry_run_logged != current:
                    state.dry_run_logged = current
                    actions.append(DryRun(product, reported_window(current), desired))
                continue
            if now < state.retry_at:
                actions.append(Wait(product, "backoff", state.retry_at))
                continue
            # enforce: hand out one set and wait for its answer and the settle time
            state.in_flight = True
            state.sent_at = now
            state.retry_at = now + self.settle
            actions.append(SetWindow(product, desired, reported_window(current)))
        return Decision(drift, frozenset(changed), tuple(actions), tuple(events))

    def record_result(self, product: str, now: float, error_code: str | int | None = None) -> SetFailed | None:
        """The answer to a SetWindow: ``error_code`` None when Bybit accepted it, else its code.

        An accepted set is verified by the first observation at least ``settle`` after it
        was sent. An error counts as a failure and backs off; an authentication or
        permission code blocks the account.
        """
        now = self._tick(now)
        code = None if error_code is None else str(error_code)
        if code is not None and code in AUTH_CODES:
            self.block(code)
        state = self._state.get(product)
        if state is None or not state.in_flight:
            return None  # not a set this core handed out (or already settled)
        state.in_flight = False
        if code is None:
            state.verifying = True
            state.accepted_at = now
            return None
        state.failures += 1
        assert state.sent_at is not None
        state.retry_at = max(state.sent_at + self.settle, now + self.backoff(state.failures))
        return SetFailed(product, code, state.failures, state.retry_at, self.blocked)

    def _contest(
        self, product: str, state: _Product, current: Drift, now: float, verified: bool
    ) -> Contended | Resumed | None:
        """Strike an accepted set that Bybit shows undone; block or resume the product.

        Called after the settle time's verification (never while a set is in flight or
        settling, when Bybit may not show it yet); ``verified``: this observation verified a set.
        """
        if state.contended:
            if now - state.stable_since >= self.contention_quiet:
                # The backoff is kept: a Bybit that accepts sets and never applies them is
                # tried no more often after a resume than before it.
                state.contended = False
                state.strikes.clear()
                return Resumed(product, now - state.stable_since)
            return None
        if state.strikes and state.strikes[0] < now - self.contention_period:
            state.strikes = [t for t in state.strikes if t >= now - self.contention_period]
        if verified and len(state.strikes) >= self.contention_strikes - 1:
            return self._stand_down(product, state, current, now)  # this set held: the other just stopped
        if state.accepted_at is not None and now - state.accepted_at > self.contention_period:
            state.accepted_at = None  # it held for the whole period: no writer undid it
        if state.accepted_at is None or not current.drifting:
            return None
        state.accepted_at = None
        state.strikes.append(now)
        if len(state.strikes) < self.contention_strikes:
            return None
        return self._stand_down(product, state, current, now)

    def _stand_down(self, product: str, state: _Product, current: Drift, now: float) -> Contended:
        state.accepted_at = None
        state.contended = True
        state.stable_since = now  # the quiet time counts from the block, not from the last change
        return Contended(product, len(state.strikes), current)

    def block(self, code: str | int) -> None:
        """Stop every set for the account until a new core is created."""
        if self.blocked_code is None:
            self.blocked_code = str(code)
