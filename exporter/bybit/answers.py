"""What one Bybit REST answer means, decided without I/O (sans-I/O: status, headers, body and ``now`` in).

:func:`classify` is everything :class:`~.rest.RestClient` knows about an answer once it has one:
whether it is a success (its parsed body and envelope) or a failure (its code, message, the end
of a rate limit, an IP ban of the host), and the readings that come with any answer: the
``X-Bapi-Limit*`` headers, Bybit's clock against the midpoint of the request (the skew), and
the fields whose values were unusable (counted in ``bybit_dcp_invalid_values_total``). The
client turns a failure into its typed error and hands the readings to its observer.

The order of the checks is Bybit's: an HTTP 403 is an IP ban at the gateway (the per-endpoint
reset header does not apply); a 3xx is refused (the signed headers would go to another host);
any other non-200 fails with its status; a 200 that is not a Bybit JSON body is ``invalid``;
a non-zero ``retCode`` fails with it (10006 without a reset header waits one second).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import code_label, hint
from .models import Envelope, parse_envelope
from .pacing import IP_BAN_SECONDS
from .sanity import header_count, load_json, rate_limit_reset

# Without a reset header, 10006 is a per-second limit.
RATE_LIMIT_FALLBACK_SECONDS = 1.0

LIMIT_STATUS, LIMIT, LIMIT_RESET = "X-Bapi-Limit-Status", "X-Bapi-Limit", "X-Bapi-Limit-Reset-Timestamp"


class Answer:
    """One answer, classified. ``code`` is None for a success; see :func:`classify`."""

    __slots__ = (
        "ban_until",
        "code",
        "data",
        "envelope",
        "invalid",
        "limit",
        "message",
        "remaining",
        "reset_at",
        "skew",
        "status",
    )

    def __init__(self, status: int) -> None:
        self.status = status
        self.data: Any = None  # the parsed JSON body (None when it is not JSON)
        self.envelope: Envelope | None = None
        self.code: str | None = None  # the failure: a retCode, an HTTP status, "redirect", "invalid"
        self.message = ""
        self.reset_at: float | None = None  # unix time a rate limit ends, when known
        self.ban_until: float | None = None  # an HTTP 403: the host is off limits until then
        self.remaining: float | None = None  # X-Bapi-Limit-Status
        self.limit: float | None = None  # X-Bapi-Limit
        self.skew: float | None = None  # Bybit's clock minus ours, seconds
        self.invalid: tuple[str, ...] = ()  # the fields whose values were unusable (rare: no list per answer)

    @property
    def ok(self) -> bool:
        return self.code is None

    @property
    def code_label(self) -> str | None:
        """The failure's ``code`` label in the metrics (None for a success)."""
        return None if self.code is None else code_label(self.code)

    @property
    def hint(self) -> str | None:
        return None if self.code is None else hint(self.code)


def classify(status: int, headers: Mapping[str, str], body: bytes, sent_at: float, now: float) -> Answer:
    """Classify an answer read at ``now`` (wall time) to a request sent at ``sent_at``."""
    answer = Answer(status)
    _rate_limit_headers(answer, headers, now)
    data: Any = None
    try:
        # Bytes, not text: an error page in another encoding is "not JSON", not a crash.
        data = load_json(body) if body else None
    except ValueError:
        data = None
    answer.data = data
    envelope: Envelope | None = None
    try:
        envelope = parse_envelope(data)
    except ValueError:
        pass
    answer.envelope = envelope
    if envelope is not None and envelope.time is not None:
        # Bybit time minus local time, against the midpoint of the request.
        answer.skew = envelope.time - (sent_at + now) / 2
    elif isinstance(data, dict) and "time" in data:
        answer.invalid += ("time",)

    if status == 403:
        # The host is off limits: for the first 403 of a host the 10 minutes of the IP rate limit;
        # the shell's HostBans tells the cause apart and may wait longer (pacing.forbidden_cause).
        answer.ban_until = now + IP_BAN_SECONDS
        return _failed(answer, "403", "IP rate limit (HTTP 403)", answer.ban_until)
    if 300 <= status < 400:
        return _failed(answer, "redirect", f"HTTP {status} redirect refused", None)
    if status != 200:
        message = envelope.message if envelope is not None else ""
        return _failed(answer, str(status), message or f"HTTP {status}", answer.reset_at)
    if envelope is None:
        return _failed(answer, "invalid", "the answer is not a Bybit JSON body", None)
    if envelope.code != 0:
        code = str(envelope.code)
        reset_at = answer.reset_at
        if code == "10006":
            reset_at = reset_at or now + RATE_LIMIT_FALLBACK_SECONDS
        return _failed(answer, code, envelope.message, reset_at)
    return answer


def _failed(answer: Answer, code: str, message: str, reset_at: float | None) -> Answer:
    answer.code, answer.message, answer.reset_at = code, message, reset_at
    return answer


def _rate_limit_headers(answer: Answer, headers: Mapping[str, str], now: float) -> None:
    """The X-Bapi-Limit readings and the reset time (unix s) when given; unusable ones noted."""
    for header in (LIMIT_STATUS, LIMIT):
        text = headers.get(header)
        if text is None:
            continue
        value = header_count(text)
        if value is None:
            answer.invalid += (header,)
        elif header == LIMIT_STATUS:
            answer.remaining = value
        else:
            answer.limit = value
    reset = headers.get(LIMIT_RESET)
    if not reset:
        return
    sane, answer.reset_at = rate_limit_reset(reset, now)
    if not sane:
        answer.invalid += (LIMIT_RESET,)
