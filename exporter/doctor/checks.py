"""The doctor's verdicts (pure): what Bybit answered in, one line per check out.

Each check takes the account's configuration and the answers the runner collected
(:class:`Answers`: parsed results, or the :class:`Failure` of a call) and returns
:class:`Line` values with ``ok``, ``warning`` or ``failed``, what was seen (``detail``) and what
to do (``hint``). Nothing here does I/O or reads the time: ``now`` comes in. Bybit's rules the
checks apply are in docs/doctor.md, each with its source.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..bybit.errors import AUTH_CODES, hint
from ..bybit.models import DcpSetting, parse_unified_margin_status
from ..bybit.pacing import BYBIT_LIMIT, budget_for_share, cold_start_seconds
from ..config import AccountConfig
from ..dcp import ACCOUNT_MODES, PRODUCT_TOPIC, PRODUCTS, UTA_1, account_mode_name

OK, WARNING, FAILED = "ok", "warning", "failed"
STATUSES = (OK, WARNING, FAILED)
EXIT_CODES = {OK: 0, WARNING: 1, FAILED: 2}

# The order the checks are reported in (also the names in --json).
CHECKS = (
    "credentials",
    "clock",
    "key_permissions",
    "key_ips",
    "key_expiry",
    "dcp",
    *(f"dcp.{p}" for p in PRODUCTS),
    "account_mode",
    "stream",
    "connection_budget",
)
ALL_ACCOUNTS = "*"  # the account of a line about the whole configuration

# Bybit's timestamp rule: server_time - recv_window <= timestamp < server_time + 1000 ms.
SKEW_NOTICE = 0.5  # seconds: worth fixing before it grows
LOCAL_AHEAD_LIMIT = 1.0  # local ahead of Bybit by this much: every signed call is refused (10002) once
# Local behind Bybit by this much: outside the REST receive window (5000 ms) and past the private
# stream's auth expiry (signed 5 s ahead), so Bybit refuses the stream's auth.
LOCAL_BEHIND_LIMIT = 5.0
EXPIRY_WARNING_DAYS = 14.0
DAY = 86400.0
# Trading permissions, as GET /v5/user/query-api names them. Which one setting a DCP window
# needs is not documented; a read-only key is refused (10005), a key with any of these is not.
TRADE_PERMISSIONS = {"ContractTrade": "Order", "Spot": "SpotTrade", "Options": "OptionsTrade"}


@dataclass(frozen=True)
class Line:
    """One verdict: the keys of ``--json`` are exactly these five."""

    account: str
    check: str
    status: str
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"account": self.account, "check": self.check, "status": self.status, "detail": self.detail,
                "hint": self.hint}  # fmt: skip


@dataclass(frozen=True)
class Failure:
    """A call that brought no usable answer: Bybit's retCode, an HTTP status or the client's own word."""

    code: str
    message: str = ""


@dataclass(frozen=True)
class StreamResult:
    """The private-stream probe: ``reason`` is empty when auth and the ``order`` subscription were
    acknowledged, else why the connection ended (the stream's reconnect reasons, or ``timeout``)."""

    reason: str = ""
    rtt: float | None = None  # of the first ping, when its pong came


@dataclass
class Answers:
    """What one account's read-only calls brought back (the runner fills it)."""

    skew: float | Failure | None = None  # Bybit minus local, from /v5/market/time (mid-request)
    response_skew: float | None = None  # the same from the signed answers' top-level ``time``
    resynced: bool = False  # a signed call was refused with 10002 and retried on Bybit's time
    key: Mapping[str, Any] | Failure | None = None  # result of /v5/user/query-api
    dcp: Mapping[str, DcpSetting] | Failure | None = None  # parsed /v5/account/query-dcp-info
    account: Mapping[str, Any] | Failure | None = None  # result of /v5/account/info
    stream: StreamResult | None = None


def no_signed_answer(answers: Answers) -> bool:
    """The key's first signed call brought nothing to go on (the key, its signature or its address
    refused, Bybit unreachable): every other signed check would fail the same way. A 10005 (the
    key is known but may not read itself) still lets the other checks run."""
    key = answers.key
    return key is None or (isinstance(key, Failure) and key.code != "10005")


def account_lines(account: AccountConfig, answers: Answers, now: float) -> list[Line]:
    """Every check of one account, in :data:`CHECKS` order. After refused credentials only the
    credentials and the clock are reported: the others need a signed answer."""
    lines = [credentials(account, answers), *clock(account, answers)]
    if no_signed_answer(answers) or answers.key is None:
        return lines
    lines += key_lines(account, answers.key, now)
    lines += dcp_lines(account, answers.dcp)
    lines += account_mode(account, answers.account, answers.dcp, answers.key)
    if answers.stream is not None:
        lines.append(stream(account, answers.stream))
    return lines


def worst(lines: Iterable[Line]) -> str:
    statuses = {line.status for line in lines}
    return next((s for s in reversed(STATUSES) if s in statuses), OK)


def exit_code(lines: Iterable[Line]) -> int:
    """0 when every line is ok, 1 with a warning and no failure, 2 with any failure."""
    return EXIT_CODES[worst(lines)]


# ---- credentials and clock ---------------------------------------------------------------------


def _where(account: AccountConfig) -> str:
    return f"{account.environment} ({urlsplit(account.rest_url).netloc or account.rest_url})"


def credentials(account: AccountConfig, answers: Answers) -> Line:
    def line(status: str, detail: str, fix: str = "") -> Line:
        return Line(account.name, "credentials", status, detail, fix)

    key = answers.key
    if key is None:
        return line(FAILED, "no signed call was made", "see the log")
    if not isinstance(key, Failure):
        return line(OK, f"Bybit accepted the key and its signature on {_where(account)}")
    code, said = key.code, f" (Bybit: {key.message[:120]})" if key.message else ""
    if code == "10003":
        return line(
            FAILED,
            f"key and host environments differ: mainnet/testnet/demo; {_where(account)} does not know this key"
            f" (10003){said}",
            "use a key created on this environment, or point environment / rest_url at the key's own "
            "(keys of mainnet, testnet and demo trading are separate); a deleted key gives the same answer",
        )
    if code == "10004":
        return line(FAILED, f"signature refused (10004){said}", hint(code))
    if code == "10005":  # any key may read itself; a refusal here is a permission matter, not the key's
        return line(WARNING, f"Bybit knows the key but refused GET /v5/user/query-api (10005){said}", hint(code))
    if code == "10010":
        return line(FAILED, f"this host's IP address is not bound to the key (10010){said}", hint(code))
    if code in AUTH_CODES:
        return line(FAILED, f"refused with {code}{said}", hint(code))
    return line(FAILED, f"no answer to check the key: {code}{said}", hint(code))


def clock(account: AccountConfig, answers: Answers) -> list[Line]:
    def line(status: str, detail: str, fix: str = "") -> list[Line]:
        return [Line(account.name, "clock", status, detail, fix)]

    skew = answers.skew
    if isinstance(skew, Failure) or skew is None:
        code = skew.code if isinstance(skew, Failure) else "network"
        return line(FAILED, f"GET /v5/market/time failed: {code}", hint(code))
    skew = round(skew, 3) + 0.0  # never "-0.000"
    response = None if answers.response_skew is None else round(answers.response_skew, 3) + 0.0
    also = f"; the signed answers' time says {response:+.3f} s" if response is not None else ""
    resynced = "; a signed call was refused (10002) and retried on Bybit's time" if answers.resynced else ""
    said = f"Bybit's clock minus this host's: {skew:+.3f} s{also}{resynced}"
    ntp = "sync this host's clock (NTP, chrony)"
    if -skew >= LOCAL_AHEAD_LIMIT:
        return line(
            WARNING,
            f"{said}: this host is ahead, so every signed call is refused once (10002) until the exporter "
            "signs with Bybit's time",
            ntp,
        )
    if skew >= LOCAL_BEHIND_LIMIT:
        return line(
            FAILED,
            f"{said}: this host is behind by more than the private stream's auth expiry (5 s), so Bybit "
            "refuses its auth ('Params Error') and signed calls fall outside the receive window (10002)",
            ntp,
        )
    if abs(skew) >= SKEW_NOTICE:
        return line(WARNING, f"{said}: within Bybit's limits (-5 s .. +1 s) but not by much", ntp)
    return line(OK, said)


# ---- the key: GET /v5/user/query-api -------------------------------------------------------------


def _permissions(key: Mapping[str, Any]) -> dict[str, list[str]]:
    raw = key.get("permissions")
    if not isinstance(raw, dict):
        return {}
    return {str(k): [str(x) for x in v] for k, v in raw.items() if isinstance(v, list)}


def _needs_write(account: AccountConfig) -> list[str]:
    """What in the configuration writes to Bybit."""
    needs = []
    if account.reassert == "enforce" and account.desired_windows:
        needs.append("reassert: enforce")
    if account.drill is not None and account.drill.every is not None:
        needs.append("scheduled drills")
    return needs


def key_lines(account: AccountConfig, key: Mapping[str, Any] | Failure, now: float) -> list[Line]:
    name = account.name
    if isinstance(key, Failure):  # 10005 and the like: the key works but cannot read itself
        line = Line(name, "key_permissions", WARNING, f"GET /v5/user/query-api failed: {key.code}", hint(key.code))
        return [line]
    return [_key_permissions(account, key), _key_ips(account, key), _key_expiry(account, key, now)]


def _key_permissions(account: AccountConfig, key: Mapping[str, Any]) -> Line:
    def line(status: str, detail: str, fix: str = "") -> Line:
        return Line(account.name, "key_permissions", status, detail, fix)

    perms = _permissions(key)
    read_only = key.get("readOnly") == 1
    trade = sorted(f"{group} {value}" for group, value in TRADE_PERMISSIONS.items() if value in perms.get(group, []))
    withdraw = "Withdraw" in perms.get("Wallet", [])
    listed = ", ".join(f"{g}: {'/'.join(v)}" for g, v in sorted(perms.items()) if v) or "none"
    kind = "read-only" if read_only else "read and write"
    detail = f"{kind} key; permissions {listed}"
    needs = _needs_write(account)
    if needs and read_only:
        return line(
            FAILED,
            f"{detail}: {' and '.join(needs)} cannot work, Bybit refuses every write of a read-only key (10005)",
            "give the key write access with Order permission (ContractTrade Order)"
            + (", or set reassert: dry-run" if "reassert: enforce" in needs else "")
            + (", or drop the drill schedule" if "scheduled drills" in needs else ""),
        )
    if needs and not trade:
        return line(
            WARNING,
            f"{detail}: {' and '.join(needs)} needs a trade permission and the key lists none",
            "give the key ContractTrade Order (which permission setting a DCP window needs is not documented)",
        )
    if withdraw:
        return line(
            WARNING, f"{detail}: this key can withdraw funds", "the exporter never needs Withdraw: use another key"
        )
    if not read_only and not needs:
        return line(
            WARNING,
            f"{detail}: nothing in the configuration writes to Bybit",
            "use a read-only key (reassert: enforce and scheduled drills are the only writers)",
        )
    return line(OK, detail + (f"; enough for {' and '.join(needs)}" if needs else ""))


def _ips(key: Mapping[str, Any]) -> list[str]:
    raw = key.get("ips")
    return [str(ip) for ip in raw] if isinstance(raw, list) else []


def _key_ips(account: AccountConfig, key: Mapping[str, Any]) -> Line:
    ips = _ips(key)
    bound = [ip for ip in ips if ip != "*"]
    if bound and "*" not in ips:
        shown = ", ".join(bound[:5]) + (f" and {len(bound) - 5} more" if len(bound) > 5 else "")
        detail = f"bound to {shown}; Bybit accepted this host's address"
        return Line(account.name, "key_ips", OK, detail)
    if key.get("readOnly") == 1:
        return Line(account.name, "key_ips", OK, "no IP restriction (read-only key)")
    return Line(
        account.name,
        "key_ips",
        WARNING,
        "no IP restriction on a key that can write",
        "bind the key to the exporter's egress addresses (an unbound key also expires after 90 days)",
    )


_ISO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})", re.IGNORECASE
)


def parse_expiry(text: object) -> float | None:
    """``expiredAt`` (``2023-12-22T07:20:25Z``, or with an offset) -> unix seconds; None when absent
    or not such a time."""
    match = _ISO_TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 62):
        return None
    zone = match.group(7).upper().replace(":", "")
    offset = 0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60)
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset


def _key_expiry(account: AccountConfig, key: Mapping[str, Any], now: float) -> Line:
    def line(status: str, detail: str, fix: str = "") -> Line:
        return Line(account.name, "key_expiry", status, detail, fix)

    at = parse_expiry(key.get("expiredAt"))
    if at is None:
        return line(OK, "Bybit reports no expiry (keys bound to IP addresses do not expire)")
    when = str(key.get("expiredAt")).strip()
    left = (at - now) / DAY
    renew = "create a new key (bound to the exporter's addresses it will not expire) and roll it out"
    if left <= 0:
        return line(FAILED, f"the key expired on {when}", renew)
    if left <= EXPIRY_WARNING_DAYS:
        return line(WARNING, f"the key expires in {left:.1f} days ({when})", renew)
    return line(OK, f"the key expires in {left:.0f} days ({when})")


# ---- DCP: GET /v5/account/query-dcp-info --------------------------------------------------------


def _wanted(account: AccountConfig) -> dict[str, str]:
    """Products the configuration relies on, and why."""
    wanted = {p: f"desired window {w} s" for p, w in account.desired_windows.items()}
    if account.mode == "guardian":
        for p in account.guardian_products:
            wanted.setdefault(p, f"guardian mode holds {PRODUCT_TOPIC[p]}")
    return wanted


def dcp_lines(account: AccountConfig, dcp: Mapping[str, DcpSetting] | Failure | None) -> list[Line]:
    name = account.name

    def line(check: str, status: str, detail: str, fix: str = "") -> Line:
        return Line(name, check, status, detail, fix)

    if account.environment == "demo":
        return [
            line(
                "dcp",
                FAILED,
                "Bybit's demo trading has no DCP (its API list has no DCP endpoint)",
                "watch DCP on testnet or mainnet",
            )
        ]
    if dcp is None or isinstance(dcp, Failure):
        code = dcp.code if isinstance(dcp, Failure) else "network"
        return [line("dcp", FAILED, f"GET /v5/account/query-dcp-info failed: {code}", hint(code))]
    enabled = {p: s for p, s in dcp.items() if s.on}
    if not enabled:
        return [
            line(
                "dcp",
                FAILED,
                "Bybit answered with an empty dcpInfos: DCP is not configured for this account",
                "ask your account manager; DCP is for institutional accounts, and Bybit enables it per "
                "main or sub account (and per product)",
            )
        ]
    shown = ", ".join(f"{p} {s.window} s" for p, s in sorted(enabled.items(), key=lambda kv: PRODUCTS.index(kv[0])))
    lines = []
    if set(enabled) == {"SPOT"}:
        lines.append(
            line(
                "dcp",
                WARNING,
                f"DCP on for SPOT only ({shown}): Bybit returns no DERIVATIVES or OPTIONS row, so linear, "
                "inverse and option orders are not protected",
                "if the bots trade derivatives, ask your account manager to enable DCP for DERIVATIVES too; "
                "for a spot-only desk this is as intended",
            )
        )
    else:
        lines.append(line("dcp", OK, f"DCP on: {shown}"))
    for product, why in sorted(_wanted(account).items(), key=lambda kv: PRODUCTS.index(kv[0])):
        check = f"dcp.{product}"
        setting = enabled.get(product)
        desired = account.desired_windows.get(product)
        if setting is None:
            lines.append(
                line(
                    check,
                    FAILED,
                    f"{why}, but Bybit lists no DCP for {product}",
                    f"ask your account manager to enable DCP for {product}, or drop it from the configuration",
                )
            )
        elif desired is not None and setting.window != desired:
            fix = (
                f"the exporter will set it back to {desired} s (reassert: enforce)"
                if account.reassert == "enforce"
                else f"set the window to {desired} s, or reassert: enforce to have the exporter do it"
            )
            lines.append(
                line(check, WARNING, f"Bybit reports {setting.window} s, the configuration wants {desired} s", fix)
            )
        else:
            lines.append(line(check, OK, f"enabled, window {setting.window} s ({why})"))
    return lines


# ---- the account mode: GET /v5/account/info ----------------------------------------------------


def account_mode(
    account: AccountConfig,
    info: Mapping[str, Any] | Failure | None,
    dcp: Mapping[str, DcpSetting] | Failure | None,
    key: Mapping[str, Any] | Failure | None = None,
) -> list[Line]:
    def line(status: str, detail: str, fix: str = "") -> list[Line]:
        return [Line(account.name, "account_mode", status, detail, fix)]

    if info is None or isinstance(info, Failure):
        code = info.code if isinstance(info, Failure) else "network"
        uta = key.get("uta") if isinstance(key, Mapping) else None
        known = ""
        if uta == 0:
            known = "; the key's information says a classic account (uta 0)"
        elif uta == 1:
            known = "; the key's information says a unified account (uta 1), not whether UTA 1.0 or 2.0"
        return line(WARNING, f"GET /v5/account/info failed: {code}{known}", hint(code))
    try:
        status = parse_unified_margin_status(info)
    except ValueError:
        return line(WARNING, "GET /v5/account/info has no unifiedMarginStatus", "report it with this output")
    mode = account_mode_name(status)
    derivatives = isinstance(dcp, Mapping) and "DERIVATIVES" in dcp and dcp["DERIVATIVES"].on
    if status in UTA_1:
        if derivatives:
            return line(
                WARNING,
                f"{mode}: inverse orders are not protected by DCP (under UTA 1.0 DCP does not cancel inverse "
                "orders; UTA 2.0 does)",
                "upgrade the account to UTA 2.0, or keep inverse orders to a watched minimum",
            )
        return line(OK, f"{mode}: under UTA 1.0 DCP would not cancel inverse orders (DERIVATIVES has no DCP here)")
    if status == 1:
        return line(
            WARNING,
            f"{mode}: Bybit configures DCP for unified trading accounts",
            "upgrade the account to UTA 2.0",
        )
    if status not in ACCOUNT_MODES:
        return line(WARNING, f"{mode}: a value Bybit does not document", "report it with this output")
    return line(OK, f"{mode}: DCP cancels spot, linear, inverse and option orders of its enabled products")


# ---- the private stream ------------------------------------------------------------------------

STREAM_REASONS = {
    "auth_failed": ("auth refused", "check the key, the secret, the environment (ws_url) and this host's clock"),
    "subscribe_failed": ("the order subscription was refused", "report it with the exporter's log"),
    "redirect": ("the stream answered with a redirect, never followed", "check ws_url"),
    "closed": ("Bybit closed the connection before the subscription was acknowledged", "check ws_url"),
    "pong_timeout": ("no pong to the first ping in time", "check the network path (proxy, firewall)"),
    "error": ("cannot open or complete the connection", "check ws_url, DNS, proxy and firewall"),
    "timeout": ("no acknowledgement in time", "check the network path (proxy, firewall)"),
}


def stream(account: AccountConfig, result: StreamResult) -> Line:
    if not result.reason:
        rtt = f"; first ping answered in {result.rtt * 1000:.1f} ms" if result.rtt is not None else ""
        return Line(account.name, "stream", OK, f"auth and the order subscription acknowledged{rtt}")
    said, fix = STREAM_REASONS.get(result.reason, (result.reason, "see the log"))
    return Line(account.name, "stream", FAILED, f"private stream: {said} ({result.reason})", fix)


# ---- the whole configuration: connection budget ------------------------------------------------


def connections_per_host(accounts: Sequence[AccountConfig]) -> Counter[str]:
    """Private connections the configuration opens per websocket host: one per account, and one
    more for a guardian tied to a bot's liveness (it holds ``dcp.*`` on a connection of its own)."""
    per_host: Counter[str] = Counter()
    for a in accounts:
        host = urlsplit(a.ws_url).hostname or a.ws_url
        per_host[host] += 1 + (1 if a.mode == "guardian" and a.guardian_liveness is not None else 0)
    return per_host


def connection_budget(accounts: Sequence[AccountConfig], share: float = 1.0) -> list[Line]:
    """Per host, the openings a (re)start needs against Bybit's 500 new connections per 5 minutes."""
    limit = budget_for_share(share).limit
    lines = []
    for host, count in sorted(connections_per_host(accounts).items()):
        seconds = cold_start_seconds(count, share)
        said = (
            f"{host}: {count} private connection(s); Bybit allows {BYBIT_LIMIT} new connections per 5 minutes "
            f"per host, this exporter uses {limit} of them"
        )
        if count > limit:
            lines.append(
                Line(
                    ALL_ACCOUNTS,
                    "connection_budget",
                    WARNING,
                    f"{said}: a restart connects the last account only after {seconds:.0f} s",
                    "shard the accounts over exporters with their own egress addresses (--shard.count), or "
                    "accept the slow start; the desk's own bots on this address draw on the same budget",
                )
            )
        else:
            lines.append(
                Line(
                    ALL_ACCOUNTS, "connection_budget", OK, f"{said}: a restart connects them all within {seconds:.0f} s"
                )
            )
    return lines
