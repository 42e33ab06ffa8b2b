"""The faults injected into the simulator that outlive a single connection: late or dropped
pongs per account, and forced REST errors per path (no I/O).

Stalls belong to a connection and live on its :class:`~.session.Session`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ForcedError:
    ret_code: int
    remaining: int | None  # None: until cleared


@dataclass
class Faults:
    pong_latency: dict[str, float] = field(default_factory=dict)  # api_key -> seconds
    dropped_pongs: set[str] = field(default_factory=set)  # api_keys
    forced_errors: dict[str, ForcedError] = field(default_factory=dict)  # path -> error

    def set_pong_latency(self, api_key: str, seconds: float) -> None:
        if seconds and seconds > 0:
            self.pong_latency[api_key] = float(seconds)
        else:
            self.pong_latency.pop(api_key, None)

    def drop_pongs(self, api_key: str, drop: bool) -> None:
        if drop:
            self.dropped_pongs.add(api_key)
        else:
            self.dropped_pongs.discard(api_key)

    def force_error(self, path: str, ret_code: int, count: int | None) -> None:
        self.forced_errors[path] = ForcedError(int(ret_code), count)

    def take_forced_error(self, path: str) -> int | None:
        """The retCode a request to ``path`` is forced to fail with (counting it), or None."""
        forced = self.forced_errors.get(path)
        if forced is None:
            return None
        if forced.remaining is not None:
            forced.remaining -= 1
            if forced.remaining <= 0:
                del self.forced_errors[path]
        return forced.ret_code

    def clear_errors(self) -> None:
        self.forced_errors.clear()

    def reset(self) -> None:
        self.pong_latency.clear()
        self.dropped_pongs.clear()
        self.forced_errors.clear()
