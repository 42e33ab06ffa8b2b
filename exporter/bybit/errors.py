"""Typed errors for Bybit's ``retCode`` values and transport failures.

``code`` is Bybit's retCode, an HTTP status, or one of the exporter's own words
(:data:`OWN_CODES`). ``bybit_dcp_api_errors_total`` is labelled with :func:`code_label`,
which keeps the label to a bounded set whatever a server answers. Messages never contain
credentials.
"""

from __future__ import annotations

import re


class BybitError(Exception):
    """A failed Bybit call. ``code`` is a string usable as a metric label; ``cause`` a word
    that tells failures of one code apart where the answer allows it (see :data:`CAUSE_HINTS`)."""

    def __init__(self, code: str | int, message: str = "", endpoint: str = "", *, cause: str | None = None) -> None:
        self.code = str(code)
        self.message = message
        self.endpoint = endpoint
        self.cause = cause
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
    """10006, HTTP 429 or HTTP 403: wait until ``reset_at`` (unix seconds) before calling again."""

    def __init__(
        self,
        code: str | int,
        message: str = "",
        endpoint: str = "",
        reset_at: float | None = None,
        *,
        cause: str | None = None,
    ) -> None:
        super().__init__(code, message, endpoint, cause=cause)
        self.reset_at = reset_at


class ServerError(BybitError):
    """10000, 10016 and HTTP 5xx: Bybit's side; retry later."""


class TransportError(BybitError):
    """No usable answer: ``timeout``, ``network`` (refused, reset, DNS), ``invalid`` (a body
    without a usable result), ``redirect`` (never followed: it would carry the credentials
    to another host) or ``too_large`` (a body past :data:`exporter.runtime.bounded.MAX_BODY`,
    received or inflated: dropped unread)."""


# Order entry: the order to cancel does not exist (any more): filled, cancelled or never placed.
ORDER_NOT_FOUND = "110001"
AUTH_CODES = frozenset({"10003", "10004", "10005", "10007", "10008", "10009", "10010", "10017"})
# Bybit's documented V5 codes (docs/v5/error.mdx, "UTA"). 10018 ("Exceeded the IP Rate Limit")
# is struck through there, deprecated: not listed, so it is labelled "other" if it ever comes.
BYBIT_CODES = frozenset(
    {
        "-1",
        "10000",
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
        "10024",
        "10027",
        "10028",
        "10029",
    }
)
OWN_CODES = ("timeout", "network", "invalid", "redirect", "too_large")
_HTTP_STATUS = re.compile(r"[1-5][0-9][0-9]")


# What to do about a failure, in words for the log, the landing page and
# bybit_dcp_last_poll_error_info{hint}; one short sentence per code, so the label stays bounded.
# Sources: docs/v5/error.mdx (HTTP codes and the UTA retCodes), docs/v5/rate-limit/rate-limit.mdx
# (403 "access too frequent": wait at least 10 minutes), docs/v5/guide.mdx (US and mainland
# China IPs get 403).
HINTS = {
    "-1": "request expired (Bybit: 'request expired'): sync the clock (NTP); the call is signed again",
    "10000": "Bybit server timeout: retrying",
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
    "10024": "Bybit's compliance rules triggered for this account: contact Bybit support",
    "10027": "transactions are banned for this account: contact Bybit support",
    "10028": "this API is for unified (UTA) accounts only: check the account's mode",
    "10029": "symbol not in the account's whitelist: check the symbol",
    "401": "HTTP 401: wrong key or authentication headers missing: check the key and rest_url",
    "403": "IP rate limited by Bybit (HTTP 403): waiting",
    "404": "HTTP 404: wrong path (check rest_url), or a category that does not match the account mode",
    "429": "Bybit's system-level frequency protection (HTTP 429): retrying",
    "timeout": "no answer in time: check the network path to Bybit",
    "network": "cannot reach Bybit: check DNS, proxy and firewall",
    "invalid": "Bybit's answer had no usable result: retrying",
    "redirect": "Bybit answered with a redirect, never followed: check rest_url",
    "too_large": "answer past the size limit (received or inflated), dropped unread: check rest_url and any proxy",
}


# Where one code has causes the answer tells apart: (code, cause) -> the advice.
TLS_CERTIFICATE = "tls_certificate"
CAUSE_HINTS = {
    ("403", "rate_limit"): HINTS["403"],
    ("403", "get_with_body"): "HTTP 403 for a GET sent with a JSON body: report it with the log line",
    ("403", "region"): (
        "HTTP 403 that persists past Bybit's 10-minute ban: this IP may be blocked by region "
        "(US and mainland China IPs are refused); waiting longer between tries"
    ),
    ("network", TLS_CERTIFICATE): (
        "TLS certificate not trusted: check the CA bundle (SSL_CERT_FILE), a TLS-inspecting proxy, "
        "the system clock, and that rest_url names Bybit's host"
    ),
}
# aiohttp's and ssl's names for a refused certificate (the message of a ``network`` error is
# the exception's class name, never its text: that may carry a URL).
_CERTIFICATE_ERRORS = frozenset({"ClientConnectorCertificateError", "SSLCertVerificationError"})


def _is_http_5xx(code: str) -> bool:
    return code.isdigit() and 500 <= int(code) < 600


def hint(code: str, cause: str | None = None) -> str:
    """The advice for a failure code and, where known, its cause (HTTP 5xx and anything else: a generic one)."""
    if cause is not None and (code, cause) in CAUSE_HINTS:
        return CAUSE_HINTS[code, cause]
    if code in HINTS:
        return HINTS[code]
    return HINTS["10016"] if _is_http_5xx(code) else "see the exporter's log"


def cause_of(error: BybitError) -> str | None:
    """The cause that picks the advice: the error's own, or a certificate failure read from a
    ``network`` error's exception name (a TLS failure is no DNS, proxy or firewall problem)."""
    if error.cause is not None:
        return error.cause
    if error.code == "network" and error.message in _CERTIFICATE_ERRORS:
        return TLS_CERTIFICATE
    return None


def hint_for(error: BybitError) -> str:
    """The advice for a failed call, as :func:`hint` gives it for its code and cause."""
    return hint(error.code, cause_of(error))


def code_label(code: str) -> str:
    """The ``code`` label of an error: a documented code, an HTTP status, an own word, else ``other``."""
    if code in BYBIT_CODES or code in OWN_CODES or _HTTP_STATUS.fullmatch(code):
        return code
    return "other"


def error_for(
    code: str | int, message: str = "", endpoint: str = "", reset_at: float | None = None, *, cause: str | None = None
) -> BybitError:
    """Map a retCode (or HTTP status) to the typed error.

    -1 ("request expired") is a timestamp error like 10002: the caller resyncs and signs again.
    429 (HTTP, and the UTA retCode: "system level frequency protection, please retry") waits
    like a rate limit; 10000 (server timeout) is Bybit's side, like 10016.
    """
    code = str(code)
    if code in AUTH_CODES:
        return AuthError(code, message, endpoint, cause=cause)
    if code == "10001":
        return ParamError(code, message, endpoint, cause=cause)
    if code in ("10002", "-1"):
        return TimestampError(code, message, endpoint, cause=cause)
    if code in ("10006", "403", "429"):
        return RateLimited(code, message, endpoint, reset_at, cause=cause)
    if code in ("10000", "10016") or _is_http_5xx(code):
        return ServerError(code, message, endpoint, cause=cause)
    if code in OWN_CODES:
        return TransportError(code, message, endpoint, cause=cause)
    return BybitError(code, message, endpoint, cause=cause)
