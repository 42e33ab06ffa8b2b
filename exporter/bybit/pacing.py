"""How often the exporter may knock on Bybit's door (sans-I/O: ``now`` and an rng come in).

- Reconnect and restart delays: capped exponential backoff with jitter, so a thousand
  accounts that lose their streams together do not come back together.
- :class:`ConnectionBudget`: Bybit allows 500 new websocket connections per 5 minutes per
  domain; one budget per process, shared by every stream.
- :class:`HostBans`: an HTTP 403 is Bybit banning this IP for every endpoint and key; one
  record per process, shared by every REST client.
- :func:`stable_phase` and :func:`next_slot`: each account pings and polls on a grid of its own,
  ``phase + k * interval``, with a phase drawn from a hash of its name. A thousand accounts then
  spread their pings and polls evenly over the interval instead of sending them in the same
  instant, and each keeps its slot across reconnects and restarts.

:class:`Pacing` bundles the two shared pieces; the fleet creates one and hands it to every
account, so a benchmark (or a test) lifts the budget by passing its own, not by patching.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field

RESTART_BACKOFF_MIN = 1.0
RESTART_BACKOFF_MAX = 60.0
# Bybit bans an IP for 10 minutes after an HTTP 403 (no reset header applies).
IP_BAN_SECONDS = 600.0


def jitter_ceiling(attempt: int, base: float, cap: float) -> float:
    """``min(cap, base * 2**attempt)``; the exponent is capped so a huge attempt count cannot overflow."""
    return min(cap, base * (2 ** min(max(attempt, 0), 62)))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (attempt counts from 0)."""
    return rng.uniform(0.0, jitter_ceiling(attempt, base, cap))


def equal_jitter_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Equal jitter: uniform in [ceiling / 2, ceiling], ceiling = min(cap, base * 2**attempt).

    Used where retrying quickly only adds load: auth failures (credentials rarely fix
    themselves) and restarts of a crashed supervisor part.
    """
    ceiling = jitter_ceiling(attempt, base, cap)
    return rng.uniform(0.5 * ceiling, ceiling)


def restart_delay(failures: int, rng: random.Random) -> float:
    """Wait before restarting a failed part: equal jitter, doubling from 1 s up to 60 s."""
    return equal_jitter_delay(failures - 1, RESTART_BACKOFF_MIN, RESTART_BACKOFF_MAX, rng)


def stable_phase(name: str, purpose: str, interval: float) -> float:
    """A phase in ``[0, interval)`` that looks random across names but is always the same for one.

    A hash, not an rng: the same account gets the same slot after a restart, and ``purpose``
    ("ping", "poll") keeps an account's pings and polls apart.
    """
    digest = hashlib.sha256(f"{purpose}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def next_slot(now: float, interval: float, phase: float) -> float:
    """The first moment of the grid ``phase + k * interval`` strictly after ``now``.

    Scheduling on the grid (not ``now + interval``) keeps a late wake-up from shifting every
    later ping: each account stays in its own slot.
    """
    slot = phase + (math.floor((now - phase) / interval) + 1) * interval
    return slot if slot > now else slot + interval


class ConnectionBudget:
    """A token bucket per host.

    With ``burst`` tokens and a refill of ``(limit - burst) / period`` per second, no window
    of ``period`` seconds can hold more than ``limit`` openings, however many accounts
    reconnect at once. :meth:`reserve` takes a token now and says how long to wait before
    using it.
    """

    def __init__(self, limit: int = 500, period: float = 300.0, burst: int = 100) -> None:
        if not 0 < burst < limit or period <= 0:
            raise ValueError("need 0 < burst < limit and period > 0")
        self.burst = float(burst)
        self.rate = (limit - burst) / period
        self._hosts: dict[str, tuple[float, float]] = {}  # host -> (tokens, at)

    def reserve(self, host: str, now: float) -> float:
        tokens, at = self._hosts.get(host, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate) - 1.0
        self._hosts[host] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / self.rate


class HostBans:
    """Until when each host is off limits after an HTTP 403."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def ban(self, host: str, until: float) -> None:
        self._until[host] = max(until, self._until.get(host, until))

    def until(self, host: str, now: float) -> float | None:
        until = self._until.get(host)
        return until if until is not None and until > now else None


@dataclass
class Pacing:
    """The process-wide limits every account shares: one instance per fleet."""

    budget: ConnectionBudget = field(default_factory=ConnectionBudget)
    host_bans: HostBans = field(default_factory=HostBans)
