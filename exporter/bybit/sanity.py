"""What a number or a JSON text from outside must be before the exporter uses it (sans-I/O).

Bybit, a proxy in between or an attacker on the path can answer anything. Each check here
turns an answer into a usable value or None, and never raises: a value out of its range is
counted by the caller as invalid and never reaches state, a gauge or a sleep. The ranges:

- a timestamp (ms, ns or s, as Bybit writes it) lies in [2017-07-14, 2100-01-01]: an
  ``inf``, a ``1e20`` or a timestamp in the wrong unit falls outside;
- a wait Bybit asks for (the 10006 reset time) is at most :data:`MAX_RATE_LIMIT_WAIT`
  ahead: an IP ban lasts 10 minutes, no documented limit is longer;
- a count in a header (the rate-limit gauges) is a finite number in [0, 1,000,000].
"""

from __future__ import annotations

import json
import math

EARLIEST_TIMESTAMP = 1_500_000_000.0  # 2017-07-14: older than any time Bybit's V5 API dates
LATEST_TIMESTAMP = 4_102_444_800.0  # 2100-01-01
MAX_RATE_LIMIT_WAIT = 600.0
MAX_HEADER_COUNT = 1_000_000.0


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def load_json(data: str | bytes) -> object:
    """Decode one JSON text; raises ValueError and nothing else.

    ``NaN`` and ``Infinity`` are not JSON (Python accepts them), deep nesting raises
    RecursionError inside the decoder, and bytes may not be UTF-8: all become ValueError.
    """
    try:
        if not isinstance(data, str):  # bytes: their encoding found as json.loads finds it
            data = data.decode(json.detect_encoding(data), "surrogatepass")
        return _DECODER.decode(data)  # one decoder, not a new one per call as json.loads builds
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def timestamp_seconds(raw: object, per_second: float) -> float | None:
    """A timestamp written in units of ``1/per_second`` s (1000: ms) as unix seconds; None unless sane.

    Bybit writes timestamps as numbers or as strings of digits; a bool is neither.
    """
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return None
    try:
        seconds = float(raw) / per_second
    except (ValueError, OverflowError):  # not a number, or an int too large for a float
        return None
    return seconds if EARLIEST_TIMESTAMP <= seconds <= LATEST_TIMESTAMP else None  # NaN fails both


def rate_limit_reset(raw: str, now: float) -> tuple[bool, float | None]:
    """``X-Bapi-Limit-Reset-Timestamp`` (ms): (whether it is sane, the future reset in unix seconds or None).

    Bybit: the header is when the limit resets *if you have exceeded it*, otherwise just the
    current timestamp (docs/v5/rate-limit/rate-limit.mdx). So only a time after ``now`` is a
    reset; one at or before ``now`` (every successful answer carries one) is none, and a
    caller that was refused waits its own fallback rather than not at all. A reset is at most
    MAX_RATE_LIMIT_WAIT after ``now``. Not sane (microseconds, ``inf``, text): (False, None),
    for the caller to count as invalid.
    """
    at = timestamp_seconds(raw.strip(), 1000.0)
    if at is None:
        return False, None
    return True, (min(at, now + MAX_RATE_LIMIT_WAIT) if at > now else None)


def header_count(raw: str) -> float | None:
    """A count from a header (``X-Bapi-Limit``, ``-Status``); None unless a finite number in range."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0.0 <= value <= MAX_HEADER_COUNT else None
