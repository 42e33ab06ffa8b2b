"""The faults injected into the simulator that outlive a single connection: late or dropped
pongs, refused streams and refused subscriptions per account, forced REST errors and canned raw REST answers per
path (no I/O).

Stalls belong to a connection and live on its :class:`~.session.Session`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar


@dataclass
class ForcedError:
    ret_code: int
    remaining: int | None  # None: until cleared


@dataclass
class ForcedResponse:
    """An answer sent as given, before any check: a hostile or broken server (or proxy)."""

    status: int
    body: str
    headers: dict[str, str]
    delay: float  # seconds to wait before answering: a hanging server
    remaining: int | None  # None: until cleared


Forced = TypeVar("Forced", ForcedError, ForcedResponse)


def _take(table: dict[str, Forced], path: str) -> Forced | None:
    """The fault for ``path`` (counting one use of it), or None."""
    forced = table.get(path)
    if forced is not None and forced.remaining is not None:
        forced.remaining -= 1
        if forced.remaining <= 0:
            del table[path]
    return forced


@dataclass
class Faults:
    pong_latency: dict[str, float] = field(default_factory=dict)  # api_key -> seconds
    dropped_pongs: set[str] = field(default_factory=set)  # api_keys
    # api_key -> seconds added to the clock a pong's args[0] reports (a forged or broken pong)
    pong_clock_offset: dict[str, float] = field(default_factory=dict)
    refused_streams: set[str] = field(default_factory=set)  # api_keys whose websocket auth is refused
    refused_subscribes: set[str] = field(default_factory=set)  # api_keys whose websocket subscribe is refused
    streams_unreachable: bool = False  # every websocket handshake answered 503, for every account
    forced_errors: dict[str, ForcedError] = field(default_factory=dict)  # path -> error
    forced_responses: dict[str, ForcedResponse] = field(default_factory=dict)  # path -> answer

    def set_pong_latency(self, api_key: str, seconds: float) -> None:
        if seconds and seconds > 0:
            self.pong_latency[api_key] = float(seconds)
        else:
            self.pong_latency.pop(api_key, None)

    def set_pong_clock_offset(self, api_key: str, seconds: float) -> None:
        if seconds:
            self.pong_clock_offset[api_key] = float(seconds)
        else:
            self.pong_clock_offset.pop(api_key, None)

    def drop_pongs(self, api_key: str, drop: bool) -> None:
        if drop:
            self.dropped_pongs.add(api_key)
        else:
            self.dropped_pongs.discard(api_key)

    def refuse_streams(self, api_key: str, refused: bool) -> None:
        if refused:
            self.refused_streams.add(api_key)
        else:
            self.refused_streams.discard(api_key)

    def refuse_subscribes(self, api_key: str, refused: bool) -> None:
        if refused:
            self.refused_subscribes.add(api_key)
        else:
            self.refused_subscribes.discard(api_key)

    def force_error(self, path: str, ret_code: int, count: int | None) -> None:
        self.forced_errors[path] = ForcedError(int(ret_code), count)

    def take_forced_error(self, path: str) -> int | None:
        """The retCode a request to ``path`` is forced to fail with (counting it), or None."""
        forced = _take(self.forced_errors, path)
        return None if forced is None else forced.ret_code

    def force_response(self, path: str, response: ForcedResponse) -> None:
        self.forced_responses[path] = response

    def take_forced_response(self, path: str) -> ForcedResponse | None:
        return _take(self.forced_responses, path)

    def clear_errors(self) -> None:
        self.forced_errors.clear()
        self.forced_responses.clear()

    def reset(self) -> None:
        self.pong_latency.clear()
        self.dropped_pongs.clear()
        self.pong_clock_offset.clear()
        self.refused_streams.clear()
        self.refused_subscribes.clear()
        self.streams_unreachable = False
        self.clear_errors()
