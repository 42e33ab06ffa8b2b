"""The guardian's dead man's switch as a pure state machine: signs of life in, arm or let go out.

Sans-I/O: the caller passes every time in (``now``, the time of a sign), and acts on what
:meth:`Switch.decide` returns: open the guarded ``dcp.*`` connection on ``armed``, close it
on ``released``. The switch starts released, so a guardian whose bot never showed life never
holds DCP off; it arms on the first sign and lets go ``timeout`` seconds after the last one.

Below the switch, each source's answer becomes a verdict (alive, not alive, or unknown and why)
by a pure function; only an ``Alive`` verdict is a sign, so an answer that means nothing never arms.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Transition = Literal["armed", "released"]
TRANSITIONS: tuple[Transition, ...] = ("armed", "released")


class Switch:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.armed = False
        self.last_sign: float | None = None

    def sign_of_life(self, at: float) -> None:
        """A sign seen at ``at`` (unix seconds); an older sign than one already seen changes nothing."""
        if self.last_sign is None or at > self.last_sign:
            self.last_sign = at

    def alive(self, now: float) -> bool:
        return self.last_sign is not None and now - self.last_sign < self.timeout

    def decide(self, now: float) -> Transition | None:
        """Arm when the bot is alive and the switch is not; let go when it is armed and the bot is not."""
        alive = self.alive(now)
        if alive and not self.armed:
            self.armed = True
            return "armed"
        if not alive and self.armed:
            self.armed = False
            return "released"
        return None

    def next_decision(self) -> float | None:
        """When the switch lets go unless a sign comes first (None: it holds nothing to let go)."""
        return None if self.last_sign is None or not self.armed else self.last_sign + self.timeout


# ---------------------------------------------------------------------- verdicts
#
# Each source's answer becomes one verdict, by a pure function: ``Alive`` (a sign of life at
# ``at``), ``NotAlive`` (a clear "no": the query is empty, the file is absent or untouched) or
# ``Unknown`` (an answer that means nothing: it is counted by its reason and never arms).
# Only ``Alive`` feeds the switch; the other two leave it to let go at its deadline.

# Why an answer told nothing, the ``reason`` label of bybit_dcp_guardian_liveness_errors_total.
# ``future_time`` is the odd one out: the sign counts (as of now), but its time was ahead of the clock.
LIVENESS_ERROR_REASONS = (
    "http_status",  # a non-2xx answer, whatever its body says
    "not_json",  # a body that is not JSON (or not UTF-8, or too large)
    "query_failed",  # Prometheus said status != success
    "bad_body",  # JSON, but not Prometheus's shape
    "not_vector",  # a scalar, string or matrix result: "non-empty" would be always true
    "bad_value",  # samples none of which has a finite value above 0, and some of which are not numbers
    "network",  # no answer: connection refused, reset, DNS
    "timeout",  # no answer in time
    "unreadable",  # the liveness file exists but cannot be read (permissions, a broken mount)
    "future_time",  # a sign dated after now (the bot's or the file system's clock is ahead): counted as now
    "exception",  # a watcher raised something unforeseen; logged with its traceback, and it goes on
)
FUTURE_TOLERANCE = 1.0  # seconds a timestamp may lead the clock (coarse file-system timestamps) before it is suspect


@dataclass(frozen=True)
class Alive:
    at: float  # unix time of the sign, never after the moment it was judged
    suspect: str | None = None  # a reason of LIVENESS_ERROR_REASONS when the sign's own time was not believed


@dataclass(frozen=True)
class NotAlive:
    why: str


@dataclass(frozen=True)
class Unknown:
    reason: str  # one of LIVENESS_ERROR_REASONS
    detail: str = ""


Verdict: TypeAlias = Alive | NotAlive | Unknown


def bounded_by_now(at: float, now: float) -> Alive:
    """A sign's time is never after now: a sign from the future counts as now, marked suspect
    when it leads by more than a coarse file-system timestamp explains."""
    if at <= now:
        return Alive(at)
    return Alive(now, suspect="future_time" if at - now > FUTURE_TOLERANCE else None)


def file_verdict(mtime_ns: int | None, previous_ns: int | None, now: float) -> Verdict:
    """The liveness file's modification time (None: no file) against the one seen on the last look.

    An unchanged time is no new sign. That matters for a time in the future: it counts as
    now once, when it first appears, and never again, so a file stamped an hour ahead holds
    DCP off for one ``timeout``, not for an hour (and is not a sign again when the clock
    reaches it).
    """
    if mtime_ns is None:
        return NotAlive("no file")
    if mtime_ns == previous_ns:
        return NotAlive("not touched since the last look")
    return bounded_by_now(mtime_ns / 1e9, now)


def prometheus_verdict(status: int, body: bytes, now: float) -> Verdict:
    """One answer of ``/api/v1/query``. Alive only when all of these hold:

    - the HTTP status is 2xx (a 500 with a success body is a broken proxy, not an answer);
    - the body is Prometheus's JSON with ``status: success`` and ``data.resultType: vector``
      (a scalar or string result is never empty, so "non-empty" would always be alive);
    - at least one sample's value is a finite number above 0 (``NaN``, ``±Inf``, ``0`` and
      negative values are not alive: ``up`` reads 0 for a target that is down).

    An empty vector is ``NotAlive``; anything else that cannot be read is ``Unknown``.
    """
    if not 200 <= status < 300:
        return Unknown("http_status", f"HTTP {status}")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return Unknown("not_json")
    if not isinstance(doc, dict):
        return Unknown("bad_body", "not a JSON object")
    if doc.get("status") != "success":
        error = doc.get("error")
        return Unknown("query_failed", str(error)[:200] if isinstance(error, str) else "")
    data = doc.get("data")
    if not isinstance(data, dict):
        return Unknown("bad_body", "data is not an object")
    kind = data.get("resultType")
    if kind != "vector":
        return Unknown("not_vector", f"resultType {str(kind)[:20]}")
    result = data.get("result")
    if not isinstance(result, list):
        return Unknown("bad_body", "result is not a list")
    if not result:
        return NotAlive("the query is empty")
    unreadable = 0
    for sample in result:
        number = _sample_value(sample)
        if number is None:
            unreadable += 1
        elif math.isfinite(number) and number > 0:
            return Alive(now)
    if unreadable:
        return Unknown("bad_value", f"{unreadable} of {len(result)} samples without a finite value")
    return NotAlive("no sample above 0")


def _sample_value(sample: Any) -> float | None:
    """A vector sample's value (``{"value": [<time>, "<number>"]}``); None when it is not a finite number."""
    value = sample.get("value") if isinstance(sample, dict) else None
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
        return None
    try:
        number = float(value[1])
    except ValueError:
        return None
    return number if math.isfinite(number) else None
