"""Typed, validated configuration from the environment (one account) or a YAML file (many).

One table, :data:`SETTINGS`, describes every account setting: its YAML key, the check that
validates and converts its value, its default, and the ``BYBIT_*`` variable that sets it in
the quick start with the way that variable's text is read. Both sources go through the same
per-setting checks, then the rules that relate settings to each other, so a setting is added
by adding one row.

Secrets are never written inline: a YAML account names an environment variable
(``api_secret_env``) or a file (``api_secret_file``, ``rsa_private_key_file``). Validation
collects every problem, names each by its field path (``accounts[1].desired_windows.SPOT``)
with the fix, and never repeats a secret value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import yaml

from .dcp import MAX_WINDOW, MIN_SETTLE_SECONDS, MIN_WINDOW, PRODUCTS, REASSERT_POLICIES, valid_window
from .secrets import MASK, Secret, is_pem, mask_key

MODES = ("observer", "guardian")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")
DEFAULT_PING_INTERVAL = 20.0  # Bybit recommends a ping every 20 s
DEFAULT_PONG_TIMEOUT = 10.0
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_SETTLE_SECONDS = MIN_SETTLE_SECONDS
DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9842"
DEFAULT_TELEMETRY_PATH = "/metrics"
QUICK_START_ACCOUNT_NAME = "default"  # the quick start's account when BYBIT_ACCOUNT is not set

# Bybit's public endpoints (from Bybit's V5 documentation). Regional hosts: set rest_url / ws_url.
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "mainnet": ("https://api.bybit.com", "wss://stream.bybit.com/v5/private"),
    "testnet": ("https://api-testnet.bybit.com", "wss://stream-testnet.bybit.com/v5/private"),
    "demo": ("https://api-demo.bybit.com", "wss://stream-demo.bybit.com/v5/private"),
}
CUSTOM_ENVIRONMENT = "custom"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONVENTIONAL_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")

# Keys people are likely to try that would put a secret in the file.
INLINE_SECRET_FIELDS = ("api_secret", "secret", "rsa_private_key", "private_key", "api_secret_value")
# The settings that reference the secret; an account sets exactly one.
SECRET_REFERENCES = ("api_secret_env", "api_secret_file", "rsa_private_key_file")


# A word that may be a credential pasted in the wrong place: 16 or more key-like characters
# with both letters and digits (Bybit's keys have 18, its secrets 36; PEM lines are longer).
_CREDENTIAL_LIKE = re.compile(r"(?=[A-Za-z0-9+/=_-]*[0-9])(?=[A-Za-z0-9+/=_-]*[A-Za-z])[A-Za-z0-9+/=_-]{16,}")


def hide_credentials(text: str) -> str:
    """``text`` with every credential-like word replaced by a mask: no problem repeats any part of one."""
    return _CREDENTIAL_LIKE.sub(MASK, text)


class ConfigError(Exception):
    """Every validation problem at once; each line names a field path and the fix.

    Problems echo what was written so it can be found; a word that may be a key or a secret
    is masked whatever check reported it.
    """

    def __init__(self, errors: list[str]) -> None:
        self.errors = [hide_credentials(e) for e in errors]
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {e}" for e in self.errors))


@dataclass(frozen=True)
class GuardianLiveness:
    """Where the guardian looks for the bot's signs of life (exactly one source), and how long it waits.

    ``http``: the bot calls ``POST /api/v1/accounts/<account>/liveness`` with this bearer token.
    ``file``: the modification time of ``path``. ``prometheus``: ``query`` at ``url`` is non-empty.
    """

    source: str
    timeout: float
    token: Secret | None = field(default=None, repr=False)
    token_env: str | None = None
    token_file: str | None = None
    path: str | None = None
    url: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class DrillSettings:
    """One DCP drill: the canary order and how its cancel is judged; ``every`` schedules it in the exporter."""

    product: str = "DERIVATIVES"
    symbol: str = "BTCUSDT"
    side: str = "Buy"
    qty: str = "0.001"
    price_offset: float = 0.5  # fraction of the last price the canary rests away from it
    tolerance: float = 35.0  # seconds beyond the window still counted in time (Bybit scans about every 30 s)
    cut: str = "abort"  # "abort": drop the armed socket without a close frame; "silence": stop pinging
    allow_other_orders: bool = False
    mainnet: bool = False
    every: float | None = None


@dataclass(frozen=True)
class AccountConfig:
    name: str
    api_key: str = field(repr=False)
    api_secret: Secret = field(repr=False)
    environment: str = "mainnet"
    rest_url: str = ENVIRONMENTS["mainnet"][0]
    ws_url: str = ENVIRONMENTS["mainnet"][1]
    mode: str = "observer"
    guardian_products: tuple[str, ...] = ()
    ping_interval: float = DEFAULT_PING_INTERVAL
    pong_timeout: float = DEFAULT_PONG_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    desired_windows: dict[str, int] = field(default_factory=dict)
    reassert: str = "off"
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    max_active_time: float | None = None
    guardian_liveness: GuardianLiveness | None = None
    drill: DrillSettings | None = None

    @property
    def stream_url(self) -> str:
        """The private-stream URL, with Bybit's ``max_active_time`` idle cut-off when configured."""
        if self.max_active_time is None:
            return self.ws_url
        sep = "&" if "?" in self.ws_url else "?"
        return f"{self.ws_url}{sep}max_active_time={int(self.max_active_time)}s"


@dataclass(frozen=True)
class Config:
    accounts: list[AccountConfig]
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    telemetry_path: str = DEFAULT_TELEMETRY_PATH
    log_level: str = "info"
    log_format: str = "logfmt"

    def secrets(self) -> list[str]:
        """Every secret value, for the log filter's defence in depth."""
        tokens = [a.guardian_liveness.token for a in self.accounts if a.guardian_liveness]
        return [a.api_secret.reveal() for a in self.accounts if a.api_secret] + [t.reveal() for t in tokens if t]

    def api_keys(self) -> list[str]:
        return [a.api_key for a in self.accounts if a.api_key]


# --------------------------------------------------------------------------- checks of one setting


class Report(Protocol):
    """Where a check or an environment reader puts a problem; ``at`` narrows the path to one entry."""

    def __call__(self, problem: str, *, at: object = None) -> None: ...


# A setting's value as given (never None: a null value counts as not given) -> its checked,
# converted value; None after reporting why it cannot be used. Collections keep their valid part.
Check: TypeAlias = Callable[[Any, Report], Any]

_API_KEY_MISSING = "missing; give the account's API key (or api_key_env)"


def _account_name(value: Any, report: Report) -> str | None:
    """The name labels every metric, so it must be short and label-safe; required, so None is "missing"."""
    if isinstance(value, str) and _NAME_RE.match(value):
        return value
    report(
        f"{'missing' if value is None else repr(value)}; give a name of letters, digits, '_', '.' or '-' "
        "(up to 63 characters, starting with a letter or digit): it labels every metric"
    )
    return None


def _api_key_text(value: Any, report: Report) -> str | None:
    """The key as text: YAML reads an all-digit key as a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    report(_API_KEY_MISSING)
    return None


@dataclass(frozen=True)
class VariableName:
    """The name of an environment variable; what it holds is read by the rule that needs it."""

    problem: str

    def __call__(self, value: Any, report: Report) -> str | None:
        if isinstance(value, str) and _ENV_NAME_RE.match(value):
            return value
        report(self.problem)
        return None


def _file_path(value: Any, report: Report) -> str | None:
    if isinstance(value, str) and value:
        return value
    report("must be a file path")
    return None


def _environment(value: Any, report: Report) -> str | None:
    if isinstance(value, str) and value in ENVIRONMENTS:
        return value
    report(f"{value!r} is not one of {', '.join(ENVIRONMENTS)}; for another host set rest_url and ws_url")
    return None


def _rest_url(value: Any, report: Report) -> str | None:
    """Without a trailing '/', so request paths can be appended as they are."""
    if isinstance(value, str) and re.match(r"^https?://[^\s/]+", value):
        return value.rstrip("/")
    report(f"{value!r} is not an http(s) URL like https://api.bybit.com")
    return None


def _ws_url(value: Any, report: Report) -> str | None:
    if isinstance(value, str) and re.match(r"^wss?://[^\s/]+", value):
        return value
    report(f"{value!r} is not a ws(s) URL like wss://stream.bybit.com/v5/private")
    return None


def _mode(value: Any, report: Report) -> str | None:
    if value in MODES:
        return str(value)
    report(f"{value!r} is not 'observer' (default, safe) or 'guardian'")
    return None


def _products(value: Any, report: Report) -> tuple[str, ...]:
    """DCP products, each once; a single product may be written without a list."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        report(f"must be a list of products ({', '.join(PRODUCTS)})")
        return ()
    products: list[str] = []
    for item in value:
        if item not in PRODUCTS:
            report(f"{item!r} is not one of {', '.join(PRODUCTS)}")
        elif item not in products:
            products.append(item)
    return tuple(products)


def _desired_windows(value: Any, report: Report) -> dict[str, int]:
    """Product -> window; each entry is judged (and named in its problem) on its own."""
    if not isinstance(value, dict):
        report("must map products to seconds, e.g. {DERIVATIVES: 10, SPOT: 10}")
        return {}
    windows: dict[str, int] = {}
    for product, window in value.items():
        if product not in PRODUCTS:
            report(f"unknown product; use {', '.join(PRODUCTS)}", at=product)
        elif not valid_window(window):
            report(
                f"{window!r} must be a whole number of seconds in [{MIN_WINDOW}, {MAX_WINDOW}] (Bybit's range)",
                at=product,
            )
        else:
            windows[product] = window
    return windows


def _reassert_policy(value: Any, report: Report) -> str | None:
    if value is False:  # YAML 1.1 reads a bare `off` as false
        return "off"
    if value in REASSERT_POLICIES:
        return str(value)
    report(f"{value!r} is not one of {', '.join(REASSERT_POLICIES)}")
    return None


def _true_or_false(value: Any, report: Report) -> bool | None:
    if isinstance(value, bool):
        return value
    report("must be true or false")
    return None


def _number_of_seconds(value: Any, report: Report) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        report(f"{value!r} is not a number of seconds")
        return None
    return float(value)


@dataclass(frozen=True)
class Seconds:
    """A duration: ``low < value <= high`` (``low <= value`` when inclusive); ``why`` explains the bounds."""

    low: float
    high: float
    inclusive: bool = False
    why: str = ""

    def __call__(self, value: Any, report: Report) -> float | None:
        seconds = _number_of_seconds(value, report)
        if seconds is None:
            return None
        too_low = seconds < self.low if self.inclusive else seconds <= self.low
        if too_low or seconds > self.high:
            bound = f"at least {self.low:g}" if self.inclusive else f"more than {self.low:g}"
            report(f"{seconds:g} must be {bound} and at most {self.high:g} seconds{self.why}")
            return None
        return seconds


LIVENESS_SOURCES = ("http", "file", "prometheus")
DRILL_SIDES = ("Buy", "Sell")
DRILL_CUTS = ("abort", "silence")
_LIVENESS_TIMEOUT = Seconds(0.0, 3600.0)


def _guardian_liveness(value: Any, report: Report) -> GuardianLiveness | None:
    """Exactly one source and a timeout; an http token is read by a rule (it needs the environment)."""
    if not isinstance(value, dict):
        report("must be a mapping with one source (http, file or prometheus) and a timeout")
        return None
    counted = _Counted(report)
    for key in value:
        if key not in (*LIVENESS_SOURCES, "timeout"):
            counted(f"unknown key; use one of {', '.join(LIVENESS_SOURCES)} and timeout", at=key)
    sources = [key for key in LIVENESS_SOURCES if key in value]
    if len(sources) != 1:
        counted(f"give exactly one source of {', '.join(LIVENESS_SOURCES)}; found {len(sources)}")
    timeout = _LIVENESS_TIMEOUT(value.get("timeout"), _at(counted, "timeout")) if "timeout" in value else None
    if "timeout" not in value:
        counted("missing; seconds without a sign of life counted the guardian lets go", at="timeout")
    if counted.count or timeout is None:
        return None
    (source,) = sources
    spec = value[source]
    where = _at(counted, source)
    fields = _LIVENESS_FIELDS[source]
    if (
        not isinstance(spec, dict)
        or set(spec) - set(fields.optional + fields.required)
        or not set(fields.required) <= set(spec)
    ):
        where(fields.usage)
        return None
    if source == "http":
        refs = [k for k in ("token_env", "token_file") if k in spec]
        if len(refs) != 1 or not all(isinstance(spec[k], str) and spec[k] for k in refs):
            where(fields.usage)
            return None
        if "token_env" in refs and not _ENV_NAME_RE.match(spec["token_env"]):
            where("token_env must be the name of an environment variable, not the token itself", at="token_env")
            return None
        return GuardianLiveness("http", timeout, token_env=spec.get("token_env"), token_file=spec.get("token_file"))
    if not all(isinstance(spec[k], str) and spec[k] for k in spec):
        where(fields.usage)
        return None
    if source == "file":
        return GuardianLiveness("file", timeout, path=spec["path"])
    if not re.match(r"^https?://[^\s/]+", spec["url"]):
        where(f"{spec['url']!r} is not an http(s) URL like http://prometheus:9090", at="url")
        return None
    return GuardianLiveness("prometheus", timeout, url=spec["url"].rstrip("/"), query=spec["query"])


@dataclass(frozen=True)
class _SourceFields:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    usage: str


_LIVENESS_FIELDS = {
    "http": _SourceFields(
        (), ("token_env", "token_file"), "give exactly one of token_env or token_file: {token_env: BOT_TOKEN}"
    ),
    "file": _SourceFields(("path",), (), "give the file the bot touches: {path: /run/bot/alive}"),
    "prometheus": _SourceFields(
        ("url", "query"), (), "give url and query: {url: http://prometheus:9090, query: 'up{job=\"bot\"} == 1'}"
    ),
}


class _Counted:
    """A report that counts what it reported, for a check that goes on only while nothing is wrong."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self.count = 0

    def __call__(self, problem: str, *, at: object = None) -> None:
        self.count += 1
        self._report(problem, at=at)


def _at(report: Report, key: str) -> Report:
    """``report`` narrowed to ``key``: problems name ``<setting>.<key>[.<at>]``."""

    def narrowed(problem: str, *, at: object = None) -> None:
        report(problem, at=key if at is None else f"{key}.{at}")

    return narrowed


_DRILL_KEYS = {f.name for f in dataclasses.fields(DrillSettings)}


def _drill(value: Any, report: Report) -> DrillSettings | None:
    """A scheduled drill: ``every`` is required here (the command line runs one drill without it)."""
    if not isinstance(value, dict):
        report("must be a mapping, e.g. {every: 86400, product: DERIVATIVES, symbol: BTCUSDT}")
        return None
    counted = _Counted(report)
    for key in value:
        if key not in _DRILL_KEYS:
            counted(f"unknown key{_did_you_mean(str(key), sorted(_DRILL_KEYS))}", at=key)
    if "every" not in value:
        counted("missing; seconds between drills (e.g. 86400: once a day)", at="every")
    settings = drill_settings(value, counted)
    return None if counted.count or settings is None else settings


def drill_settings(value: Mapping[str, Any], report: Report) -> DrillSettings | None:
    """Check the drill's values (from YAML or the drill's flags); None after reporting a problem."""
    counted = _Counted(report)
    checks: dict[str, Callable[[Any, Report], Any]] = {
        "product": lambda v, r: v if v in PRODUCTS else r(f"{v!r} is not one of {', '.join(PRODUCTS)}"),
        "symbol": lambda v, r: (
            v
            if isinstance(v, str) and re.fullmatch(r"[A-Z0-9-]{2,40}", v)
            else r(f"{v!r} is not a symbol like BTCUSDT")
        ),
        "side": lambda v, r: v if v in DRILL_SIDES else r(f"{v!r} is not Buy or Sell"),
        "qty": lambda v, r: str(v) if _positive_number(v) else r(f"{v!r} is not a positive quantity"),
        "price_offset": lambda v, r: (
            float(v)
            if _number(v) and 0 < v < 1
            else r(f"{v!r} must be a fraction of the last price in (0, 1), e.g. 0.5")
        ),
        "tolerance": Seconds(0.0, 3600.0, inclusive=True),
        "cut": lambda v, r: v if v in DRILL_CUTS else r(f"{v!r} is not one of {', '.join(DRILL_CUTS)}"),
        "allow_other_orders": _true_or_false,
        "mainnet": _true_or_false,
        "every": Seconds(0.0, 30 * 86400.0),
    }
    values: dict[str, Any] = {}
    for key, check in checks.items():
        if key in value and value[key] is not None:
            values[key] = check(value[key], _at(counted, key))
    if counted.count:
        return None
    return DrillSettings(**values)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_number(value: Any) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


_SETTLE_WHY = f" (Bybit asks to wait {MIN_SETTLE_SECONDS:g} s before checking a new setting)"
# settle_seconds' range depends on allow_short_settle, so it is applied by a rule after the per-setting pass.
_SETTLE_RANGE = Seconds(MIN_SETTLE_SECONDS, 3600.0, inclusive=True, why=_SETTLE_WHY)
_SHORT_SETTLE_RANGE = Seconds(0.0, 3600.0, why=_SETTLE_WHY)


# --------------------------------------------------------------------------- reading BYBIT_* text

# (the variable's non-empty text, the variable's name, report) -> the setting's value as YAML would
# give it, for the setting's check to judge; None after reporting why the text cannot be read.
EnvReader: TypeAlias = Callable[[str, str, Report], Any]


def _verbatim(text: str, variable: str, report: Report) -> str:
    """Names, keys and paths are taken as written: a stray space is reported, not silently dropped."""
    return text


def _stripped(text: str, variable: str, report: Report) -> str:
    """Choice words and URLs, where surrounding spaces from a shell or .env file are noise."""
    return text.strip()


def _seconds_text(text: str, variable: str, report: Report) -> float | None:
    try:
        return float(text)
    except ValueError:
        report(f"{text!r} is not a number of seconds")
        return None


def _comma_list(text: str, variable: str, report: Report) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _product_seconds_list(text: str, variable: str, report: Report) -> dict[str, Any]:
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


def _this_variable(text: str, variable: str, report: Report) -> str:
    """The variable holds the secret itself, so the setting (a variable's name) names this variable."""
    return variable


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Setting:
    """One account setting: the YAML key, its check and default, and its quick-start variable."""

    name: str
    check: Check
    default: Any = None  # the value when not given; None: none, or derived by a rule
    required: bool = False  # when not given, the check sees None and says what is missing
    env: str | None = None  # the BYBIT_* variable that sets it without a YAML file
    read_env: EnvReader = _verbatim


SETTINGS: tuple[Setting, ...] = (
    Setting("name", _account_name, required=True, env="BYBIT_ACCOUNT"),
    Setting("api_key", _api_key_text, env="BYBIT_API_KEY"),
    Setting("api_key_env", VariableName("must be the name of an environment variable")),
    Setting(
        "api_secret_env",
        VariableName("must be the name of an environment variable, not the secret itself"),
        env="BYBIT_API_SECRET",
        read_env=_this_variable,
    ),
    Setting("api_secret_file", _file_path, env="BYBIT_API_SECRET_FILE"),
    Setting("rsa_private_key_file", _file_path),
    Setting("environment", _environment, default="mainnet", env="BYBIT_ENV", read_env=_stripped),
    Setting("rest_url", _rest_url, env="BYBIT_REST_URL", read_env=_stripped),
    Setting("ws_url", _ws_url, env="BYBIT_WS_URL", read_env=_stripped),
    Setting("mode", _mode, default="observer", env="BYBIT_MODE", read_env=_stripped),
    Setting("guardian_products", _products, default=(), env="BYBIT_GUARDIAN_PRODUCTS", read_env=_comma_list),
    Setting(
        "ping_interval",
        Seconds(0.0, 300.0),
        default=DEFAULT_PING_INTERVAL,
        env="BYBIT_PING_INTERVAL",
        read_env=_seconds_text,
    ),
    Setting(
        "pong_timeout",
        Seconds(0.0, 300.0),
        default=DEFAULT_PONG_TIMEOUT,
        env="BYBIT_PONG_TIMEOUT",
        read_env=_seconds_text,
    ),
    Setting(
        "poll_interval",
        Seconds(0.0, 3600.0),
        default=DEFAULT_POLL_INTERVAL,
        env="BYBIT_POLL_INTERVAL",
        read_env=_seconds_text,
    ),
    Setting(
        "max_active_time",
        Seconds(30.0, 600.0, inclusive=True),
        env="BYBIT_MAX_ACTIVE_TIME",
        read_env=_seconds_text,
    ),
    Setting(
        "desired_windows", _desired_windows, default={}, env="BYBIT_DESIRED_WINDOWS", read_env=_product_seconds_list
    ),
    Setting("reassert", _reassert_policy, default="off", env="BYBIT_REASSERT", read_env=_stripped),
    Setting(
        "settle_seconds",
        _number_of_seconds,  # its range: _settle_seconds_in_range
        default=DEFAULT_SETTLE_SECONDS,
        env="BYBIT_SETTLE_SECONDS",
        read_env=_seconds_text,
    ),
    Setting("allow_short_settle", _true_or_false, default=False),
    Setting("guardian_liveness", _guardian_liveness),
    Setting("drill", _drill),
)
_SETTING_BY_NAME = {setting.name: setting for setting in SETTINGS}


# --------------------------------------------------------------------------- loading


def load_config(
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    listen_address: str = DEFAULT_LISTEN_ADDRESS,
    telemetry_path: str = DEFAULT_TELEMETRY_PATH,
    log_level: str = "info",
    log_format: str = "logfmt",
) -> Config:
    """Build the configuration from ``config_file`` (YAML) or, without one, the environment."""
    env = os.environ if env is None else env
    errors: list[str] = []
    if config_file:
        accounts = _accounts_from_file(config_file, env, errors)
    else:
        accounts = _accounts_from_env(env, errors)
    return build_config(
        accounts,
        listen_address=listen_address,
        telemetry_path=telemetry_path,
        log_level=log_level,
        log_format=log_format,
        errors=errors,
    )


def build_config(
    accounts: list[AccountConfig],
    *,
    listen_address: str,
    telemetry_path: str,
    log_level: str,
    log_format: str,
    errors: list[str] | tuple[str, ...] = (),
) -> Config:
    """Check the flags and assemble the configuration.

    Raises :class:`ConfigError` with the flags' problems followed by ``errors`` (problems
    already found in the accounts), so every problem is reported at once.
    """
    problems = _check_flags(listen_address, telemetry_path, log_level, log_format) + list(errors)
    if problems:
        raise ConfigError(problems)
    return Config(
        accounts=list(accounts),
        listen_address=listen_address,
        telemetry_path=telemetry_path,
        log_level=log_level.lower(),
        log_format=log_format.lower(),
    )


def parse_listen_address(address: str) -> tuple[str, int]:
    """``:9842`` -> ("0.0.0.0", 9842); ``host:port`` and ``[::1]:port`` as written."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{address!r} is not host:port (e.g. 0.0.0.0:9842 or :9842)")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    host = host.strip("[]") or "0.0.0.0"
    return host, port


def _check_flags(listen_address: str, telemetry_path: str, log_level: str, log_format: str) -> list[str]:
    errors = []
    try:
        parse_listen_address(listen_address)
    except ValueError as exc:
        errors.append(f"--web.listen-address: {exc}")
    if not telemetry_path.startswith("/") or telemetry_path in ("/", "/healthz", "/readyz"):
        errors.append(
            f"--web.telemetry-path: {telemetry_path!r} must start with '/' and not be '/', '/healthz' or '/readyz'"
        )
    if log_level.lower() not in LOG_LEVELS:
        errors.append(f"--log.level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if log_format.lower() not in LOG_FORMATS:
        errors.append(f"--log.format: {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    return errors


def _accounts_from_env(env: Mapping[str, str], errors: list[str]) -> list[AccountConfig]:
    """The quick start: one account from the ``BYBIT_*`` variables of the table, each read as its row says."""
    problem = _quick_start_credentials_problem(env)
    if problem:
        errors.append(problem)
        return []
    raw: dict[str, Any] = {"name": QUICK_START_ACCOUNT_NAME}
    for setting in SETTINGS:
        if setting.env and env.get(setting.env):
            raw[setting.name] = setting.read_env(env[setting.env], setting.env, _reporter(setting.env, errors))
    account = _account(raw, _env_path, env, errors)
    return [account] if account else []


def _quick_start_credentials_problem(env: Mapping[str, str]) -> str | None:
    """A missing key or secret in the quick start: say which variables to set, or where else to start."""
    if not env.get("BYBIT_API_KEY"):
        return (
            "BYBIT_API_KEY: not set; set BYBIT_API_KEY and BYBIT_API_SECRET (or BYBIT_API_SECRET_FILE), "
            "or pass --config.file for a YAML file with accounts (or --demo to try the exporter without credentials)"
        )
    if env.get("BYBIT_API_SECRET") and env.get("BYBIT_API_SECRET_FILE"):
        return "BYBIT_API_SECRET_FILE: set either BYBIT_API_SECRET or BYBIT_API_SECRET_FILE, not both"
    if not env.get("BYBIT_API_SECRET") and not env.get("BYBIT_API_SECRET_FILE"):
        return "BYBIT_API_SECRET: not set; set BYBIT_API_SECRET or BYBIT_API_SECRET_FILE (a file holding the secret)"
    return None


def _env_path(name: str) -> str:
    """Quick-start problems name the variable to fix."""
    return _SETTING_BY_NAME[name].env or name


def _accounts_from_file(path: str, env: Mapping[str, str], errors: list[str]) -> list[AccountConfig]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        errors.append(f"--config.file: cannot read {path!r}: {exc.strerror or exc}")
        return []
    except (RecursionError, UnicodeDecodeError):
        errors.append(f"--config.file: {path!r} is not readable YAML (nested too deeply, or not UTF-8)")
        return []
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        errors.append(f"--config.file: {path!r} is not valid YAML{at}; fix the syntax")
        return []
    if not isinstance(data, dict):
        errors.append(f"--config.file: {path!r} must be a mapping with an 'accounts' list")
        return []
    for key in data:
        if key != "accounts":
            errors.append(f"{key}: unknown top-level key; the file holds 'accounts' (web and log settings are flags)")
    raw_accounts = data.get("accounts")
    if not isinstance(raw_accounts, list) or not raw_accounts:
        errors.append(
            "accounts: must be a non-empty list of accounts (each with name, api_key and api_secret_env or "
            "api_secret_file)"
        )
        return []
    accounts: list[AccountConfig] = []
    seen: dict[str, int] = {}
    writers: dict[tuple[str, str], tuple[int, str]] = {}  # (api key, REST host) -> the account using it
    for i, raw in enumerate(raw_accounts):
        where = f"accounts[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{where}: must be a mapping of settings")
            continue
        account = _account(raw, _yaml_paths(where), env, errors)
        if account is None:
            continue
        if account.name in seen:
            errors.append(
                f"{where}.name: {account.name!r} is already used by accounts[{seen[account.name]}]; names must be unique"
            )
            continue
        seen[account.name] = i
        first = writers.setdefault((account.api_key, account.rest_url), (i, account.name))
        if first[0] != i:
            errors.append(
                f"{where}.api_key: {account.name!r} uses the API key {mask_key(account.api_key)} of accounts[{first[0]}] "
                f"({first[1]!r}) on the same environment: that is one Bybit account, and two writers would flip its "
                "DCP window back and forth; watch it once"
            )
            continue
        accounts.append(account)
    return accounts


def _yaml_paths(where: str) -> Callable[[str], str]:
    """Problems in a YAML account name its field path: ``accounts[1].desired_windows``."""
    return lambda name: f"{where}.{name}"


def _reporter(where: str, errors: list[str]) -> Report:
    def report(problem: str, *, at: object = None) -> None:
        errors.append(f"{where}{'' if at is None else f'.{at}'}: {problem}")

    return report


# --------------------------------------------------------------------------- one account


@dataclass(frozen=True)
class _Checked:
    """One account after the per-setting pass, for the rules that relate settings to each other."""

    values: dict[str, Any]  # each setting: its checked value, its default when not given, None if its check failed
    given: frozenset[Any]  # the keys the account sets (to a value other than null)
    path: Callable[[str], str]
    errors: list[str]

    def reporter(self, name: str) -> Report:
        return _reporter(self.path(name), self.errors)

    def report(self, name: str, problem: str) -> None:
        self.reporter(name)(problem)

    def failed(self, name: str) -> bool:
        return name in self.given and self.values[name] is None


def _account(
    raw: Mapping[Any, Any], path: Callable[[str], str], env: Mapping[str, str], errors: list[str]
) -> AccountConfig | None:
    """Validate one account's raw settings; append every problem to ``errors``."""
    before = len(errors)
    _refuse_unknown_keys(raw, path, errors)
    checked = _check_each_setting(raw, path, errors)
    api_key = _resolve_api_key(checked, env)
    api_secret = _resolve_api_secret(checked, env)
    endpoints = _resolve_endpoints(checked)
    _guardian_products_match_mode(checked)
    _pong_before_next_ping(checked)
    _enforce_needs_desired_windows(checked)
    settle_seconds = _settle_seconds_in_range(checked)
    liveness = _liveness_needs_guardian_and_its_token(checked, env)
    _drill_only_for_an_observer(checked, endpoints)
    if len(errors) > before:
        return None
    # Every check and rule reports when it yields None, so with no problems all are set.
    assert api_key is not None and api_secret is not None and endpoints is not None and settle_seconds is not None
    values = checked.values
    environment, rest_url, ws_url = endpoints
    return AccountConfig(
        name=values["name"],
        api_key=api_key,
        api_secret=api_secret,
        environment=environment,
        rest_url=rest_url,
        ws_url=ws_url,
        mode=values["mode"],
        guardian_products=values["guardian_products"],
        ping_interval=values["ping_interval"],
        pong_timeout=values["pong_timeout"],
        poll_interval=values["poll_interval"],
        desired_windows=dict(values["desired_windows"]),  # not the table's shared default
        reassert=values["reassert"],
        settle_seconds=settle_seconds,
        max_active_time=values["max_active_time"],
        guardian_liveness=liveness,
        drill=values["drill"],
    )


def _refuse_unknown_keys(raw: Mapping[Any, Any], path: Callable[[str], str], errors: list[str]) -> None:
    """Only the table's settings exist; an inline secret is refused without its value, a typo gets a hint."""
    for key in raw:
        if key in INLINE_SECRET_FIELDS:
            errors.append(
                f"{path(key)}: secrets are never written inline; use api_secret_env (the name of an environment "
                "variable holding the secret) or api_secret_file (a file holding it), or rsa_private_key_file"
            )
        elif key not in _SETTING_BY_NAME:
            errors.append(f"{path(str(key))}: unknown setting{_did_you_mean(str(key), _SETTING_BY_NAME)}")


def _did_you_mean(key: str, options: Iterable[str]) -> str:
    names = list(options)
    close = difflib.get_close_matches(key, names, n=1)
    return f"; did you mean {close[0]}?" if close else f"; known settings: {', '.join(names)}"


def _check_each_setting(raw: Mapping[Any, Any], path: Callable[[str], str], errors: list[str]) -> _Checked:
    """Each setting on its own, by its row's check; a null value counts as not given."""
    given = frozenset(key for key, value in raw.items() if value is not None)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in given or setting.required:
            values[setting.name] = setting.check(raw.get(setting.name), _reporter(path(setting.name), errors))
        else:
            values[setting.name] = setting.default
    return _Checked(values, given, path, errors)


# --------------------------------------------------------------------------- rules across settings


def _resolve_api_key(checked: _Checked, env: Mapping[str, str]) -> str | None:
    """Exactly one of api_key and api_key_env (the name of a variable holding the key)."""
    if "api_key" in checked.given and "api_key_env" in checked.given:
        checked.report("api_key_env", "set either api_key or api_key_env, not both")
        return None
    if "api_key_env" not in checked.given:
        if "api_key" not in checked.given:
            checked.report("api_key", _API_KEY_MISSING)
        return checked.values["api_key"]
    variable = checked.values["api_key_env"]
    if variable is None:
        return None
    key = env.get(variable, "").strip()
    if not key:
        shown = variable if _CONVENTIONAL_ENV_NAME_RE.match(variable) else "it names (not shown: it may be the key)"
        checked.report("api_key_env", f"the environment variable {shown} is not set or empty; export it")
        return None
    return key


def _resolve_api_secret(checked: _Checked, env: Mapping[str, str]) -> Secret | None:
    """Exactly one secret reference, then the secret it points to."""
    if any(key in checked.given for key in INLINE_SECRET_FIELDS):
        return None  # refused with the unknown keys, without repeating the value
    references = [name for name in SECRET_REFERENCES if name in checked.given]
    if not references:
        checked.report(
            "api_secret_env",
            "missing; reference the secret with api_secret_env (an environment variable), "
            "api_secret_file (a file) or rsa_private_key_file (an RSA private key in PEM)",
        )
        return None
    if len(references) > 1:
        checked.report(references[1], f"set only one of {', '.join(references)}")
        return None
    (reference,) = references
    target = checked.values[reference]
    if target is None:
        return None
    if reference == "api_secret_env":
        return _secret_from_variable(checked, target, env)
    return _secret_from_file(checked, reference, target)


def _secret_from_variable(checked: _Checked, variable: str, env: Mapping[str, str]) -> Secret | None:
    value = env.get(variable, "").strip()
    if value:
        return Secret(value)
    if _CONVENTIONAL_ENV_NAME_RE.match(variable):
        checked.report("api_secret_env", f"environment variable {variable} is not set or empty; export it")
    else:  # possibly the secret itself pasted here: do not repeat it
        checked.report(
            "api_secret_env",
            "the environment variable it names is not set (name not shown, in case it is the secret itself); "
            "give the NAME of a variable, e.g. DESK_A_SECRET, and export it",
        )
    return None


def _secret_from_file(checked: _Checked, reference: str, file_path: str) -> Secret | None:
    try:
        with open(file_path, encoding="utf-8") as fh:
            value = fh.read().strip()
    except OSError as exc:
        # A bare word (no '/' or '.') may be a secret pasted by mistake: do not repeat it.
        shown = repr(file_path) if ("/" in file_path or "." in file_path) else "the file (name not shown)"
        checked.report(reference, f"cannot read {shown}: {exc.strerror or type(exc).__name__}; give a file path")
        return None
    if not value:
        checked.report(reference, f"{file_path!r} is empty")
        return None
    if reference == "rsa_private_key_file" and not is_pem(value):
        checked.report(reference, f"{file_path!r} is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)")
        return None
    return Secret(value)


def _resolve_endpoints(checked: _Checked) -> tuple[str, str, str] | None:
    """(environment, rest_url, ws_url): Bybit's URLs for the environment unless overridden; without an
    environment, both URLs make a custom endpoint."""
    urls_given = [name for name in ("rest_url", "ws_url") if name in checked.given]
    if "environment" not in checked.given and len(urls_given) == 1:
        missing = "ws_url" if urls_given == ["rest_url"] else "rest_url"
        checked.report(missing, "set both rest_url and ws_url (or an environment) for a custom endpoint")
        return None
    if any(checked.failed(name) for name in ("environment", "rest_url", "ws_url")):
        return None
    values = checked.values
    if "environment" not in checked.given and urls_given:
        return CUSTOM_ENVIRONMENT, values["rest_url"], values["ws_url"]
    default_rest, default_ws = ENVIRONMENTS[values["environment"]]
    return values["environment"], values["rest_url"] or default_rest, values["ws_url"] or default_ws


def _guardian_products_match_mode(checked: _Checked) -> None:
    """A guardian subscribes the dcp.* topics of its products, so needs some; any other mode subscribes none."""
    mode, products = checked.values["mode"], checked.values["guardian_products"]
    if mode == "guardian" and not products:
        checked.report("guardian_products", "guardian mode needs the products to protect, e.g. [DERIVATIVES]")
    elif mode != "guardian" and products:  # an invalid mode counts as the safe observer
        checked.report(
            "guardian_products",
            "only used in guardian mode; set mode: guardian or remove it (an observer never subscribes dcp.*)",
        )


def _pong_before_next_ping(checked: _Checked) -> None:
    """A pong that may arrive after the next ping cannot tell which ping it answers."""
    ping, pong = checked.values["ping_interval"], checked.values["pong_timeout"]
    if ping is not None and pong is not None and pong >= ping:
        checked.report("pong_timeout", f"{pong:g} s must be shorter than ping_interval ({ping:g} s)")


def _enforce_needs_desired_windows(checked: _Checked) -> None:
    """Enforcing puts the desired windows back, so there must be some."""
    if checked.values["reassert"] == "enforce" and not checked.values["desired_windows"]:
        checked.report("reassert", "enforce needs desired_windows (e.g. DERIVATIVES: 10); set them or use dry-run/off")


def _settle_seconds_in_range(checked: _Checked) -> float | None:
    """At least Bybit's 10 s, unless allow_short_settle opts in (tests and drills against the simulator)."""
    settle_seconds = checked.values["settle_seconds"]
    if settle_seconds is None:
        return None
    settle_range = _SHORT_SETTLE_RANGE if checked.values["allow_short_settle"] else _SETTLE_RANGE
    return settle_range(settle_seconds, checked.reporter("settle_seconds"))


def _liveness_needs_guardian_and_its_token(checked: _Checked, env: Mapping[str, str]) -> GuardianLiveness | None:
    """Liveness ties a guardian's dcp.* connection to the bot: only for guardians; an http source needs its token."""
    liveness: GuardianLiveness | None = checked.values["guardian_liveness"]
    if liveness is None:
        return None
    if checked.values["mode"] != "guardian":
        checked.report("guardian_liveness", "only used in guardian mode; set mode: guardian and guardian_products")
        return None
    if liveness.source != "http":
        return liveness
    if liveness.token_env is not None:
        token = env.get(liveness.token_env, "").strip()
        if not token:
            checked.report(
                "guardian_liveness", f"http.token_env: environment variable {liveness.token_env} is not set or empty"
            )
            return None
    else:
        try:
            with open(str(liveness.token_file), encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            checked.report("guardian_liveness", f"http.token_file: cannot read {liveness.token_file!r}: {exc.strerror}")
            return None
        if not token:
            checked.report("guardian_liveness", f"http.token_file: {liveness.token_file!r} is empty")
            return None
    return dataclasses.replace(liveness, token=Secret(token))


def _drill_only_for_an_observer(checked: _Checked, endpoints: tuple[str, str, str] | None) -> None:
    """A guardian holds a dcp.* connection, so DCP could never fire during its drill; mainnet needs a yes."""
    drill: DrillSettings | None = checked.values["drill"]
    if drill is None:
        return
    if checked.values["mode"] != "observer":
        checked.report("drill", "only for an observer: a guardian's own dcp.* connection keeps DCP from firing")
    if endpoints is not None and endpoints[0] == "mainnet" and not drill.mainnet:
        checked.report(
            "drill",
            "refused on mainnet: DCP cancels every active order of the product; use a testnet sub-account, "
            "or set mainnet: true for a dedicated mainnet sub-account",
        )
