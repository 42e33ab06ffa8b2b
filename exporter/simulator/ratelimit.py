"""Per key, per endpoint request limits in Bybit's style (no I/O, ``now`` passed in).

Each (key, path) gets ``limit`` requests per one-second window; the window starts at the
first request and resets one second later. Every answer carries the three ``X-Bapi-Limit*``
headers, so clients can read their headroom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PERIOD = 1.0  # seconds


@dataclass
class LimitState:
    limit: int
    remaining: int
    reset_ms: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class RateLimiter:
    def __init__(self, limits: dict[str, int], default: int) -> None:
        self.limits = dict(limits)
        self.default = default
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def limit_for(self, path: str) -> int:
        return self.limits.get(path, self.default)

    def hit(self, key: str, path: str, now: float) -> LimitState:
        """Count one request; ``allowed`` is False once the window's budget is spent."""
        limit = self.limit_for(path)
        start, used = self._windows.get((key, path), (now, 0))
        if now >= start + PERIOD:
            start, used = now, 0
        allowed = used < limit
        if allowed:
            used += 1
        self._windows[(key, path)] = (start, used)
        # Rounded up: a client that waits until the advertised millisecond must find the window reset.
        return LimitState(limit, max(limit - used, 0), math.ceil((start + PERIOD) * 1000), allowed)
