"""Typed errors for Bybit's ``retCode`` values and transport failures.

``code`` is Bybit's retCode, an HTTP status, or one of the exporter's own words
(:data:`OWN_CODES`). ``bybit_dcp_api_errors_total`` is labelled with :func:`code_label`,
which keeps the label to a bounded set whatever a server answers. Messages never contain
credentials.
"""

from __future__ import annotations

import re


class BybitError(Exception):
    """A failed Bybit call. ``code`` is a string usable as a metric label."""

    def __init__(self, code: str | int, message: str = "", endpoint: str = "") -> None:
        self.code = str(code)
        self.message = message
        self.endpoint = endpoint
        super().__init__(f"{endpoint or 'bybit'}: {self.code} {message}".strip())


class ParamError(BybitError):
    """10001: the request's parameters were refused."""


class TimestampError(BybitError):
    """10002: the request timestamp is outside the receive window (clock skew)."""


class AuthError(BybitError):
    """10003 invalid key, 10004 bad signature, 10005 permission denied, 10007 authentication
    failed, 10008 account banned, 10009 region not allowed, 10010 unmatched IP, 10017 route
    not found (wrong host or environment).

    Retrying does not help until the configuration, the credentials or the account change.
    """


class RateLimited(BybitError):
    """10006 or HTTP 403: wait until ``reset_at`` (unix seconds) before calling again."""

    def __init__(self, code: str | int, message: str = "", endpoint: str = "", reset_at: float | None = None) -> None:
        super().__init__(code, message, endpoint)
        self.reset_at = reset_at


class ServerError(BybitError):
    """10016 and HTTP 5xx: Bybit's side; retry later."""


class TransportError(BybitError):
    """No usable answer: ``timeout``, ``network`` (refused, reset, DNS), ``invalid`` (a body
    without a usable result) or ``redirect`` (never followed: it would carry the credentials
    to another host)."""


# Order entry: the order to cancel does not exist (any more): filled, cancelled or never placed.
ORDER_NOT_FOUND = "110001"
AUTH_CODES = frozenset({"10003", "10004", "10005", "10007", "10008", "10009", "10010", "10017"})
# Bybit's documented V5 codes (see the README's error table).
BYBIT_CODES = frozenset(
    {
        "10001",
        "10002",
        "10003",
        "10004",
        "10005",
        "10006",
        "10007",
        "10008",
        "10009",
        "10010",
        "10014",
        "10016",
        "10017",
    }
)
OWN_CODES = ("timeout", "network", "invalid", "redirect")
_HTTP_STATUS = re.compile(r"[1-5][0-9][0-9]")


# What to do about a failure, in words for the log, the landing page and
# bybit_dcp_last_poll_error_info{hint}; one short sentence per code, so the label stays bounded.
HINTS = {
    "10001": "Bybit refused the parameters: report it with the log line",
    "10002": "local clock off Bybit's by more than the receive window: sync the clock (NTP)",
    "10003": "API key unknown on this environment: check the key and testnet/mainnet",
    "10004": "signature refused: check the API secret (and that it belongs to this key)",
    "10005": "key lacks permission: give the key Account/Order read (and Order write to re-assert)",
    "10006": "rate limited: waiting for Bybit's reset time",
    "10007": "authentication failed: check the key, the secret and the environment",
    "10008": "the account or key is banned: contact Bybit support",
    "10009": "Bybit refuses this region: run the exporter from an allowed location",
    "10010": "IP not on the key's whitelist: add the exporter's egress IP to the key",
    "10016": "Bybit server error: retrying",
    "10017": "route not found: check rest_url and ws_url (host and environment)",
    "403": "IP rate limited by Bybit (HTTP 403): waiting",
    "timeout": "no answer in time: check the network path to Bybit",
    "network": "cannot reach Bybit: check DNS, proxy and firewall",
    "invalid": "Bybit's answer had no usable result: retrying",
    "redirect": "Bybit answered with a redirect, never followed: check rest_url",
}


def _is_http_5xx(code: str) -> bool:
    return code.isdigit() and 500 <= int(code) < 600


def hint(code: str) -> str:
    """The advice for a failure code (HTTP 5xx and anything else: a generic one)."""
    if code in HINTS:
        return HINTS[code]
    return HINTS["10016"] if _is_http_5xx(code) else "see the exporter's log"


def code_label(code: str) -> str:
    """The ``code`` label of an error: a documented code, an HTTP status, an own word, else ``other``."""
    if code in BYBIT_CODES or code in OWN_CODES or _HTTP_STATUS.fullmatch(code):
        return code
    return "other"


def error_for(code: str | int, message: str = "", endpoint: str = "", reset_at: float | None = None) -> BybitError:
    """Map a retCode (or HTTP status) to the typed error."""
    code = str(code)
    if code in AUTH_CODES:
        return AuthError(code, message, endpoint)
    if code == "10001":
        return ParamError(code, message, endpoint)
    if code == "10002":
        return TimestampError(code, message, endpoint)
    if code in ("10006", "403"):
        return RateLimited(code, message, endpoint, reset_at)
    if code == "10016" or _is_http_5xx(code):
        return ServerError(code, message, endpoint)
    if code in OWN_CODES:
        return TransportError(code, message, endpoint)
    return BybitError(code, message, endpoint)
