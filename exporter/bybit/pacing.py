"""How often the exporter may knock on Bybit's door (sans-I/O: ``now`` and an rng come in).

- :func:`backoff_delay`: every wait before trying again (reconnects, restarts, re-asserts),
  capped exponential backoff with as much jitter as the caller asks for, so a thousand
  accounts that lose their streams together do not come back together.
- :class:`ConnectionBudget`: Bybit allows 500 new websocket connections per 5 minutes per
  host, counted against the IP, so a desk's own bots on the same IP draw on the same 500;
  ``--bybit.connection-share`` gives the exporter a share of it (:func:`budget_for_share`: at
  0.6 it opens at most 300 per 5 minutes and leaves 200 to the bots). Within its share L the
  exporter follows the rule itself: at most L openings in any 305 s (300 s and a margin, as
  Bybit sees each opening a little after it is sent), 100 of them at once and the rest 25 a
  second, so a cold start's TLS handshakes never take the loop for long. N accounts on one
  host are all allowed to connect after ``floor((N - 1) / L) * 305 + max(0, (N - 1) mod L -
  99) / 25`` seconds (:func:`cold_start_seconds`): 1,000 accounts take 321 s at the full
  share; a token bucket keeping a fifth of the limit for bursts needs 675 s; no schedule
  within the rule can be done before 300 s. One budget per process, shared by every stream.
- :class:`HostBans`: an HTTP 403 is Bybit refusing this IP for every endpoint and key; one
  record per process, shared by every REST client. Bybit names three causes of a 403
  (docs/v5/error.mdx): the IP rate limit ("403, access too frequent": stop and wait at least
  10 minutes, docs/v5/rate-limit/rate-limit.mdx), a GET sent with an empty JSON body, and a
  US IP (docs/v5/guide.mdx: US and mainland China IPs get 403). Only the first clears by
  itself. :meth:`HostBans.forbidden` tells them apart as far as the answer allows: a body
  saying "too frequent" is the rate limit; a GET that carried a body is that mistake; a body
  naming a country or region, or a 403 again on the first try after a ban ended (it
  persisted past the ban), is most likely the region, and waits an hour, then longer, up to
  six hours, instead of knocking every 10 minutes.
- :func:`stable_phase` and :func:`next_slot`: each account pings and polls on a grid of its own,
  ``phase + k * interval``, with a phase drawn from a hash of its name. A thousand accounts then
  spread their pings and polls evenly over the interval instead of sending them in the same
  instant, and each keeps its slot across reconnects and restarts. The phases fall on steps of
  250 ms (at least 80 per interval), so the accounts of one step share one wake-up of the
  event loop: a wake-up costs more than the ping it sends. At 1,000 accounts with 20 s pings
  that is 4 wake-ups a second for a dozen pings each, not 50 for one each; the CPU went from
  7.3-7.9 % to 4.6 % (``benchmarks/bench_vs_sdk.py``), and a dozen pongs read together are
  stamped within a millisecond of each other.

:class:`Pacing` bundles the two shared pieces; the fleet creates one and hands it to every
account, so a benchmark (or a test) lifts the budget by passing its own, not by patching.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from dataclasses import dataclass, field

RESTART_BACKOFF_MIN = 1.0
RESTART_BACKOFF_MAX = 60.0
# Bybit bans an IP for 10 minutes after an HTTP 403 (no reset header applies).
IP_BAN_SECONDS = 600.0
# A 403 that persists past the ban (most likely a region block): an hour, doubling to six.
REGION_BAN_SECONDS = 3600.0
MAX_REGION_BAN_SECONDS = 6 * 3600.0


# How much of the ceiling a delay is sure to wait (:func:`backoff_delay`'s ``floor``).
FULL_JITTER = 0.0  # anywhere in [0, ceiling]: many clients retrying at once spread widest
EQUAL_JITTER = 0.5  # in [ceiling / 2, ceiling]: where retrying quickly only adds load
NO_JITTER = 1.0  # the ceiling itself: one account's own retries, with nobody to spread from


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """``min(cap, base * 2**attempt)``; the exponent is capped so a huge attempt count cannot overflow."""
    return min(cap, base * (2 ** min(max(attempt, 0), 64)))


def backoff_delay(
    attempt: int, base: float, cap: float, rng: random.Random | None = None, *, floor: float = FULL_JITTER
) -> float:
    """Capped exponential backoff: uniform in ``[floor * ceiling, ceiling]``, with
    ``ceiling = min(cap, base * 2**attempt)`` (attempt counts from 0). Every delay the exporter
    waits before trying again comes from here:

    - a stream's reconnect: full jitter, so a thousand accounts that lose their streams
      together do not come back together;
    - a stream's reconnect after an auth failure (credentials rarely fix themselves), and the
      restart of a crashed supervisor part (:data:`RESTART_BACKOFF_MIN` to
      :data:`RESTART_BACKOFF_MAX`): equal jitter;
    - a re-assert that failed (``Reasserter.backoff``): no jitter, and no ``rng`` needed.
    """
    ceiling = backoff_ceiling(attempt, base, cap)
    if floor >= 1.0:
        return ceiling
    if rng is None:
        raise ValueError("a jittered backoff needs an rng")
    return rng.uniform(floor * ceiling, ceiling)


PHASE_STEP = 0.25  # seconds; phases are multiples of it (of interval / MIN_STEPS for short intervals)
MIN_STEPS = 80


def stable_phase(name: str, purpose: str, interval: float) -> float:
    """A phase in ``[0, interval)`` that looks random across names but is always the same for one.

    A hash, not an rng: the same account gets the same slot after a restart, and ``purpose``
    ("ping", "poll") keeps an account's pings and polls apart. A multiple of the step, so
    the accounts that share a step share a wake-up.
    """
    digest = hashlib.sha256(f"{purpose}:{name}".encode()).digest()
    step = min(PHASE_STEP, interval / MIN_STEPS)
    return math.floor(int.from_bytes(digest[:8], "big") / 2**64 * interval / step) * step


def next_slot(now: float, interval: float, phase: float) -> float:
    """The first moment of the grid ``phase + k * interval`` strictly after ``now``.

    Scheduling on the grid (not ``now + interval``) keeps a late wake-up from shifting every
    later ping: each account stays in its own slot.
    """
    slot = phase + (math.floor((now - phase) / interval) + 1) * interval
    return slot if slot > now else slot + interval


# Bybit: 500 new websocket connections per 5 minutes per host (counted against the IP):
# docs/v5/rate-limit/rate-limit.mdx, "Do not establish more than 500 connections within a
# 5-minute window", for stream.bybit.com and local-site hosts such as stream.bybit.kz alike.
BYBIT_LIMIT = 500
BYBIT_PERIOD = 300.0
MARGIN = 5.0  # seconds added to the window: an opening reaches Bybit a little after it is sent
BURST = 100  # openings at once, then ...
PACE = 25.0  # ... this many a second


class ConnectionBudget:
    """Per host: at most ``limit`` openings in any ``period`` seconds; ``burst`` at once, then ``pace`` a second.

    Grants are first come, first served: each :meth:`reserve` gets the earliest moment that
    keeps both limits, given every opening granted before it.
    """

    def __init__(
        self, limit: int = BYBIT_LIMIT, period: float = BYBIT_PERIOD + MARGIN, burst: int = BURST, pace: float = PACE
    ) -> None:
        if limit < 1 or period <= 0 or burst < 1 or pace <= 0:
            raise ValueError("need limit >= 1, period > 0, burst >= 1 and pace > 0")
        self.limit, self.period, self.burst, self.pace = limit, period, float(min(burst, limit)), pace
        # host -> the last `limit` opening times (oldest first), and the pace's tokens at the last one
        self._granted: dict[str, deque[float]] = {}
        self._tokens: dict[str, float] = {}

    def reserve(self, host: str, now: float) -> float:
        granted = self._granted.setdefault(host, deque(maxlen=self.limit))
        tokens = self._tokens.get(host, self.burst)
        at = now
        if granted:
            at = max(at, granted[-1])
            tokens = min(self.burst, tokens + (at - granted[-1]) * self.pace)
        if len(granted) == self.limit:  # the window since the oldest of the last `limit` is full
            window_end = granted[0] + self.period
            if window_end > at:
                tokens = min(self.burst, tokens + (window_end - at) * self.pace)
                at = window_end
        if tokens < 1.0:
            at += (1.0 - tokens) / self.pace
            tokens = 1.0
        granted.append(at)
        self._tokens[host] = tokens - 1.0
        return at - now


def budget_for_share(share: float) -> ConnectionBudget:
    """The budget for ``share`` (0 < share <= 1) of Bybit's 500 connections per 5 minutes."""
    if not 0 < share <= 1:
        raise ValueError(f"--bybit.connection-share must be in (0, 1], not {share}")
    limit = math.floor(BYBIT_LIMIT * share)
    if limit < 1:
        raise ValueError(f"--bybit.connection-share {share} leaves no connection at all")
    return ConnectionBudget(limit)


def cold_start_seconds(accounts: int, share: float = 1.0) -> float:
    """Seconds until ``accounts`` streams on one host have all been allowed to open."""
    if accounts <= 0:
        return 0.0
    limit = budget_for_share(share).limit
    windows, rest = divmod(accounts - 1, limit)
    return windows * (BYBIT_PERIOD + MARGIN) + max(0, rest - (min(BURST, limit) - 1)) / PACE


@dataclass(frozen=True)
class Forbidden:
    """What an HTTP 403 means, as far as the answer tells: ``cause`` is ``rate_limit``,
    ``get_with_body`` or ``region``; no call to the host before ``until``."""

    cause: str
    until: float
    message: str
    strikes: int  # 403s in a row, each on the first try after the previous ban ended


_TOO_FREQUENT = ("too frequent", "too many")
_REGION_WORDS = ("country", "region", "location", "jurisdiction", "restricted", "not available in")


def forbidden_cause(body: bytes | str, get_with_body: bool, persisted: bool) -> str:
    """The cause of a 403 from its body text and what came before it (pure).

    The words Bybit's pages give come first: "access too frequent" is the rate limit even if
    it repeats. A GET that carried a body is that mistake. Then a body naming a country or
    region, or a 403 that persisted past the ban, is the region; anything else is taken for
    the rate limit, which is the cause that clears by itself.
    """
    text = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body)[:4096].lower()
    if any(words in text for words in _TOO_FREQUENT):
        return "rate_limit"
    if get_with_body:
        return "get_with_body"
    if persisted or any(word in text for word in _REGION_WORDS):
        return "region"
    return "rate_limit"


_FORBIDDEN_MESSAGES = {
    "rate_limit": "IP rate limit (HTTP 403): every call to this host waits 10 minutes",
    "get_with_body": "HTTP 403: a GET was sent with a JSON body",
    "region": "HTTP 403 past the ban: this IP may be blocked by region; waiting longer",
}


class HostBans:
    """Until when each host is off limits after an HTTP 403, and whether the 403s persist."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._last: dict[str, Forbidden] = {}  # host -> the verdict on its latest 403

    def ban(self, host: str, until: float) -> None:
        host = host.lower()  # one host however its URL was written
        self._until[host] = max(until, self._until.get(host, until))

    def forbidden(self, host: str, now: float, body: bytes | str = b"", *, get_with_body: bool = False) -> Forbidden:
        """Record a 403 from ``host`` at ``now``; its cause and how long every call there waits.

        A 403 on the first try after the previous ban ended (within a ban's length of its
        end: the exporter polls far more often than that) is a strike; the first 403, or one
        long after the last ban, starts again at one. Two strikes is a 403 that persisted past
        the ban: from there the waits are an hour, then two, four, six.
        """
        host = host.lower()
        last = self._last.get(host)
        if last is not None and now < last.until:
            return last  # another call's answer under the same ban (they were in flight together)
        persisted = last is not None and now <= last.until + IP_BAN_SECONDS
        strikes = last.strikes + 1 if persisted and last is not None else 1
        cause = forbidden_cause(body, get_with_body, strikes >= 2)
        if cause == "region":
            wait = min(REGION_BAN_SECONDS * 2.0 ** min(max(strikes - 2, 0), 16), MAX_REGION_BAN_SECONDS)
        else:
            wait = IP_BAN_SECONDS
        self.ban(host, now + wait)
        verdict = Forbidden(cause, self._until[host], _FORBIDDEN_MESSAGES[cause], strikes)
        self._last[host] = verdict
        return verdict

    def until(self, host: str, now: float) -> float | None:
        until = self._until.get(host.lower())
        return until if until is not None and until > now else None


@dataclass
class Pacing:
    """The process-wide limits every account shares: one instance per fleet."""

    budget: ConnectionBudget = field(default_factory=ConnectionBudget)
    host_bans: HostBans = field(default_factory=HostBans)
