"""Bybit's environments by name, URLs compared as hosts, and reading ``BYBIT_*`` text into the
value a YAML file would give, for the same checks to judge.

This module imports nothing of the configuration at run time, so that :mod:`.model` can
build its table of environments from the regional hosts here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .checks import Report
    from .rules import Checked

# (the variable's non-empty text, the variable's name, report) -> the setting's value as YAML would
# give it, for the setting's check to judge; None after reporting why the text cannot be read.
EnvReader: TypeAlias = "Callable[[str, str, Report], Any]"


# --- Bybit's regional hosts -----------------------------------------------------------------


@dataclass(frozen=True)
class Regional:
    """A local site of Bybit: its REST host and, where Bybit documents one, its private stream.

    ``ws_url`` None: Bybit documents no private stream for the site (REST only); an account
    there must name its stream in ``ws_url``, as every account holds a private stream.
    """

    site: str
    rest_url: str
    ws_url: str | None
    mainnet: bool = True
    note: str = ""


GUIDE = "bybit-exchange/docs, docs/v5/guide.mdx (REST API Base Endpoint)"
WSS_AUTH = "bybit-exchange/docs, docs/v5/websocket/wss-authentication.mdx (private stream, local sites)"
# REST hosts: GUIDE ("Netherlands users: use https://api.bybit.nl for mainnet" and so on for
# Turkey, Kazakhstan, Georgia, the UAE, the EEA, Indonesia; Japan: api.manepa.jp, testnet
# api-testnet.manepa.jp). Private streams: WSS_AUTH ("If your account is registered from
# www.bybit.tr, please use stream.bybit.tr for mainnet access", and .id, .kz,
# stream.bybitgeorgia.ge, stream.manepa.jp), on the path /v5/private as for
# stream.bybit.com. The EEA site's API "only support[s] 'Connect to Third-Party
# Applications' feature for API broker user" (GUIDE). The 500 connections per 5 minutes
# apply to local-site hosts too (docs/v5/rate-limit/rate-limit.mdx names api.bybit.kz).
REGIONAL_ENVIRONMENTS: dict[str, Regional] = {
    "nl": Regional("Netherlands", "https://api.bybit.nl", None),
    "ae": Regional("United Arab Emirates", "https://api.bybit.ae", None),
    "eu": Regional("EEA", "https://api.bybit.eu", None, note="API broker users only"),
    "tr": Regional("Turkey", "https://api.bybit.tr", "wss://stream.bybit.tr/v5/private"),
    "id": Regional("Indonesia", "https://api.bybit.id", "wss://stream.bybit.id/v5/private"),
    "kz": Regional("Kazakhstan", "https://api.bybit.kz", "wss://stream.bybit.kz/v5/private"),
    "ge": Regional("Georgia", "https://api.bybitgeorgia.ge", "wss://stream.bybitgeorgia.ge/v5/private"),
    "jp": Regional("Japan", "https://api.manepa.jp", "wss://stream.manepa.jp/v5/private"),
    "jp-testnet": Regional("Japan (testnet)", "https://api-testnet.manepa.jp", None, mainnet=False),
}


def is_mainnet(environment: str) -> bool:
    """Real money: ``mainnet`` and every regional mainnet (a custom endpoint is the caller's call)."""
    if environment == "mainnet":
        return True
    regional = REGIONAL_ENVIRONMENTS.get(environment)
    return regional is not None and regional.mainnet


def stream_needs_ws_url(checked: Checked, endpoints: tuple[str, str, str] | None) -> None:
    """A REST-only site (no private stream documented) needs ``ws_url``: every account holds a stream."""
    if endpoints is None or endpoints[2]:
        return
    regional = REGIONAL_ENVIRONMENTS.get(endpoints[0])
    if regional is None:
        return
    checked.report(
        "ws_url",
        f"environment {endpoints[0]!r} ({regional.site}, {regional.rest_url}) is REST only: Bybit documents no "
        "private stream for it, and the exporter needs one (the order stream and the heartbeat); "
        "set ws_url (BYBIT_WS_URL) to the private stream your account uses",
    )


# --- URLs compared as hosts -----------------------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def host_key(url: str) -> str:
    """The host a URL reaches, as ``host:port``: the host without case or a trailing dot, the port
    explicit (the scheme's default when none is written), path, query and slashes dropped.
    ``https://api.bybit.com`` and ``https://API.bybit.com:443/`` are one host. A text that is
    no URL is its own key (lower-cased), so it still compares equal to itself."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is no number, a bracket left open
        return url.strip().lower()
    if not host:
        return url.strip().lower()
    host = host.rstrip(".")
    if port is None:
        port = DEFAULT_PORTS.get(parts.scheme.lower())
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def read_verbatim(text: str, variable: str, report: Report) -> str:
    """Names, keys and paths are taken as written: a stray space is reported, not silently dropped."""
    return text


def read_stripped(text: str, variable: str, report: Report) -> str:
    """Choice words and URLs, where surrounding spaces from a shell or .env file are noise."""
    return text.strip()


def read_seconds(text: str, variable: str, report: Report) -> float | None:
    try:
        return float(text)
    except ValueError:
        report(f"{text!r} is not a number of seconds")
        return None


def read_comma_list(text: str, variable: str, report: Report) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def read_product_seconds(text: str, variable: str, report: Report) -> dict[str, Any]:
    """``DERIVATIVES=10,SPOT=10``; whole numbers become ints so the window check judges them as in YAML."""
    windows: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        product, sep, value = item.partition("=")
        value = value.strip()
        if not sep:
            report(f"{item.strip()!r} is not PRODUCT=SECONDS (e.g. DERIVATIVES=10,SPOT=10)")
            continue
        windows[product.strip()] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return windows


def read_this_variable(text: str, variable: str, report: Report) -> str:
    """The variable holds the secret itself, so the setting (a variable's name) names this variable."""
    return variable
