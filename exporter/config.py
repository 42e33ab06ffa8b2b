"""Typed, validated configuration from the environment (one account) or a YAML file (many).

Secrets are never written inline: a YAML account names an environment variable
(``api_secret_env``) or a file (``api_secret_file``, ``rsa_private_key_file``). Validation
collects every problem, names each by its field path (``accounts[1].desired_windows.SPOT``)
with the fix, and never repeats a secret value.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .dcp import MAX_WINDOW, MIN_SETTLE_SECONDS, MIN_WINDOW, PRODUCTS, REASSERT_POLICIES, valid_window
from .secrets import Secret, is_pem

MODES = ("observer", "guardian")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")
DEFAULT_PING_INTERVAL = 20.0  # Bybit recommends a ping every 20 s
DEFAULT_PONG_TIMEOUT = 10.0
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_SETTLE_SECONDS = MIN_SETTLE_SECONDS
DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9842"
DEFAULT_TELEMETRY_PATH = "/metrics"

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

ACCOUNT_FIELDS = (
    "name",
    "api_key",
    "api_key_env",
    "api_secret_env",
    "api_secret_file",
    "rsa_private_key_file",
    "environment",
    "rest_url",
    "ws_url",
    "mode",
    "guardian_products",
    "ping_interval",
    "pong_timeout",
    "poll_interval",
    "max_active_time",
    "desired_windows",
    "reassert",
    "settle_seconds",
    "allow_short_settle",
)
# Keys people are likely to try that would put a secret in the file.
INLINE_SECRET_FIELDS = ("api_secret", "secret", "rsa_private_key", "private_key", "api_secret_value")


class ConfigError(Exception):
    """Every validation problem at once; each line names a field path and the fix."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {e}" for e in self.errors))


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
        return [a.api_secret.reveal() for a in self.accounts if a.api_secret]

    def api_keys(self) -> list[str]:
        return [a.api_key for a in self.accounts if a.api_key]


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
    """The quick start: one account from ``BYBIT_*`` variables."""
    if not env.get("BYBIT_API_KEY"):
        errors.append(
            "BYBIT_API_KEY: not set; set BYBIT_API_KEY and BYBIT_API_SECRET (or BYBIT_API_SECRET_FILE), "
            "or pass --config.file for a YAML file with accounts (or --demo to try the exporter without credentials)"
        )
        return []
    raw: dict[str, Any] = {"name": env.get("BYBIT_ACCOUNT", "default"), "api_key": env["BYBIT_API_KEY"]}
    if env.get("BYBIT_API_SECRET") and env.get("BYBIT_API_SECRET_FILE"):
        errors.append("BYBIT_API_SECRET_FILE: set either BYBIT_API_SECRET or BYBIT_API_SECRET_FILE, not both")
        return []
    if env.get("BYBIT_API_SECRET"):
        raw["api_secret_env"] = "BYBIT_API_SECRET"
    elif env.get("BYBIT_API_SECRET_FILE"):
        raw["api_secret_file"] = env["BYBIT_API_SECRET_FILE"]
    else:
        errors.append("BYBIT_API_SECRET: not set; set BYBIT_API_SECRET or BYBIT_API_SECRET_FILE (a file holding the secret)")
        return []
    for key, var in _ENV_FIELD_NAMES.items():
        if key in _ENV_TEXT_FIELDS and env.get(var):
            raw[key] = env[var].strip()
        elif key in _ENV_SECONDS_FIELDS and env.get(var):
            try:
                raw[key] = float(env[var])
            except ValueError:
                errors.append(f"{var}: {env[var]!r} is not a number of seconds")
    if env.get("BYBIT_GUARDIAN_PRODUCTS"):
        raw["guardian_products"] = [p.strip() for p in env["BYBIT_GUARDIAN_PRODUCTS"].split(",") if p.strip()]
    if env.get("BYBIT_DESIRED_WINDOWS"):
        windows: dict[str, Any] = {}
        for item in env["BYBIT_DESIRED_WINDOWS"].split(","):
            if not item.strip():
                continue
            product, sep, value = item.partition("=")
            value = value.strip()
            if not sep:
                errors.append(
                    f"BYBIT_DESIRED_WINDOWS: {item.strip()!r} is not PRODUCT=SECONDS (e.g. DERIVATIVES=10,SPOT=10)"
                )
                continue
            windows[product.strip()] = int(value) if re.fullmatch(r"-?\d+", value) else value
        raw["desired_windows"] = windows
    account = _account(raw, "environment", env, errors, env_names=True)
    return [account] if account else []


def _accounts_from_file(path: str, env: Mapping[str, str], errors: list[str]) -> list[AccountConfig]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        errors.append(f"--config.file: cannot read {path!r}: {exc.strerror or exc}")
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
        errors.append("accounts: must be a non-empty list of accounts (each with name, api_key and api_secret_env or api_secret_file)")
        return []
    accounts: list[AccountConfig] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_accounts):
        where = f"accounts[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{where}: must be a mapping of settings")
            continue
        account = _account(raw, where, env, errors)
        if account is None:
            continue
        if account.name in seen:
            errors.append(f"{where}.name: {account.name!r} is already used by accounts[{seen[account.name]}]; names must be unique")
            continue
        seen[account.name] = i
        accounts.append(account)
    return accounts


# --------------------------------------------------------------------------- one account


def _account(
    raw: dict[str, Any], where: str, env: Mapping[str, str], errors: list[str], *, env_names: bool = False
) -> AccountConfig | None:
    """Validate one account's raw settings; append problems to ``errors``."""
    before = len(errors)

    def path(key: str) -> str:
        if env_names:
            return _ENV_FIELD_NAMES.get(key, key)
        return f"{where}.{key}"

    for key in raw:
        if key in INLINE_SECRET_FIELDS:
            errors.append(
                f"{path(key)}: secrets are never written inline; use api_secret_env (the name of an environment "
                "variable holding the secret) or api_secret_file (a file holding it), or rsa_private_key_file"
            )
        elif key not in ACCOUNT_FIELDS:
            hint = _did_you_mean(str(key), ACCOUNT_FIELDS)
            errors.append(f"{path(str(key))}: unknown setting{hint}")

    # name
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        errors.append(
            f"{path('name')}: {'missing' if name is None else repr(name)}; give a name of letters, digits, '_', '.' or '-' "
            "(up to 63 characters, starting with a letter or digit): it labels every metric"
        )
        name = None

    # api key (an identifier, not a secret, but kept out of logs anyway)
    api_key = _api_key(raw, path, env, errors)

    # secret: exactly one reference
    api_secret = _api_secret(raw, path, env, errors)

    # endpoints
    environment, rest_url, ws_url = _endpoints(raw, path, errors)

    # mode and products to protect
    mode = raw.get("mode", "observer")
    if mode not in MODES:
        errors.append(f"{path('mode')}: {mode!r} is not 'observer' (default, safe) or 'guardian'")
        mode = "observer"
    guardian_products = _products(raw.get("guardian_products"), path("guardian_products"), errors)
    if mode == "guardian" and not guardian_products:
        errors.append(
            f"{path('guardian_products')}: guardian mode needs the products to protect, e.g. [DERIVATIVES]"
        )
    if mode == "observer" and guardian_products:
        errors.append(
            f"{path('guardian_products')}: only used in guardian mode; set mode: guardian or remove it "
            "(an observer never subscribes dcp.*)"
        )

    # timings
    ping_interval = _seconds(raw, "ping_interval", DEFAULT_PING_INTERVAL, path, errors, low=0.0, high=300.0)
    pong_timeout = _seconds(raw, "pong_timeout", DEFAULT_PONG_TIMEOUT, path, errors, low=0.0, high=300.0)
    if ping_interval is not None and pong_timeout is not None and pong_timeout >= ping_interval:
        errors.append(
            f"{path('pong_timeout')}: {pong_timeout:g} s must be shorter than ping_interval ({ping_interval:g} s)"
        )
    poll_interval = _seconds(raw, "poll_interval", DEFAULT_POLL_INTERVAL, path, errors, low=0.0, high=3600.0)
    max_active_time = _seconds(raw, "max_active_time", None, path, errors, low=30.0, high=600.0, inclusive=True)

    # desired state and re-assertion
    desired = _desired_windows(raw.get("desired_windows"), path("desired_windows"), errors)
    reassert = raw.get("reassert", "off")
    if reassert is False:  # YAML 1.1 reads a bare `off` as false
        reassert = "off"
    if reassert not in REASSERT_POLICIES:
        errors.append(f"{path('reassert')}: {reassert!r} is not one of off, dry-run, enforce")
        reassert = "off"
    if reassert == "enforce" and not desired:
        errors.append(
            f"{path('reassert')}: enforce needs desired_windows (e.g. DERIVATIVES: 10); set them or use dry-run/off"
        )
    allow_short = raw.get("allow_short_settle", False)
    if not isinstance(allow_short, bool):
        errors.append(f"{path('allow_short_settle')}: must be true or false")
        allow_short = False
    settle_low = 0.0 if allow_short else MIN_SETTLE_SECONDS
    # Below Bybit's 10 s only with an explicit opt-in (tests and drills against the simulator).
    settle = _seconds(raw, "settle_seconds", DEFAULT_SETTLE_SECONDS, path, errors, low=settle_low, high=3600.0, inclusive=not allow_short)

    if len(errors) > before:
        return None
    assert name and api_key and api_secret and environment and rest_url and ws_url
    return AccountConfig(
        name=name,
        api_key=api_key,
        api_secret=api_secret,
        environment=environment,
        rest_url=rest_url,
        ws_url=ws_url,
        mode=mode,
        guardian_products=guardian_products if mode == "guardian" else (),
        ping_interval=ping_interval,  # type: ignore[arg-type]
        pong_timeout=pong_timeout,  # type: ignore[arg-type]
        poll_interval=poll_interval,  # type: ignore[arg-type]
        desired_windows=desired,
        reassert=reassert,
        settle_seconds=settle,  # type: ignore[arg-type]
        max_active_time=max_active_time,
    )


# The one table of account settings <-> BYBIT_* variables (quick start and its messages).
_ENV_FIELD_NAMES = {
    "name": "BYBIT_ACCOUNT",
    "api_key": "BYBIT_API_KEY",
    "api_secret_env": "BYBIT_API_SECRET",
    "api_secret_file": "BYBIT_API_SECRET_FILE",
    "environment": "BYBIT_ENV",
    "rest_url": "BYBIT_REST_URL",
    "ws_url": "BYBIT_WS_URL",
    "mode": "BYBIT_MODE",
    "guardian_products": "BYBIT_GUARDIAN_PRODUCTS",
    "ping_interval": "BYBIT_PING_INTERVAL",
    "pong_timeout": "BYBIT_PONG_TIMEOUT",
    "poll_interval": "BYBIT_POLL_INTERVAL",
    "max_active_time": "BYBIT_MAX_ACTIVE_TIME",
    "desired_windows": "BYBIT_DESIRED_WINDOWS",
    "reassert": "BYBIT_REASSERT",
    "settle_seconds": "BYBIT_SETTLE_SECONDS",
}
# Settings read from their variable as they are, and as a number of seconds; the others
# (credentials, lists, windows) are read by _accounts_from_env itself.
_ENV_TEXT_FIELDS = ("environment", "rest_url", "ws_url", "mode", "reassert")
_ENV_SECONDS_FIELDS = ("ping_interval", "pong_timeout", "poll_interval", "settle_seconds", "max_active_time")


def _api_key(raw: dict[str, Any], path, env: Mapping[str, str], errors: list[str]) -> str | None:
    if "api_key" in raw and "api_key_env" in raw:
        errors.append(f"{path('api_key_env')}: set either api_key or api_key_env, not both")
        return None
    if "api_key_env" in raw:
        var = raw["api_key_env"]
        if not isinstance(var, str) or not _ENV_NAME_RE.match(var):
            errors.append(f"{path('api_key_env')}: must be the name of an environment variable")
            return None
        if not env.get(var):
            errors.append(f"{path('api_key_env')}: environment variable {var} is not set or empty; export it")
            return None
        return env[var].strip()
    key = raw.get("api_key")
    if isinstance(key, int) and not isinstance(key, bool):  # YAML reads an all-digit key as a number
        key = str(key)
    if not isinstance(key, str) or not key.strip():
        errors.append(f"{path('api_key')}: missing; give the account's API key (or api_key_env)")
        return None
    return key.strip()


def _api_secret(raw: dict[str, Any], path, env: Mapping[str, str], errors: list[str]) -> Secret | None:
    refs = [k for k in ("api_secret_env", "api_secret_file", "rsa_private_key_file") if k in raw]
    if any(k in raw for k in INLINE_SECRET_FIELDS):
        return None  # already reported, without the value
    if not refs:
        errors.append(
            f"{path('api_secret_env')}: missing; reference the secret with api_secret_env (an environment variable), "
            "api_secret_file (a file) or rsa_private_key_file (an RSA private key in PEM)"
        )
        return None
    if len(refs) > 1:
        errors.append(f"{path(refs[1])}: set only one of {', '.join(refs)}")
        return None
    ref = refs[0]
    target = raw[ref]
    if ref == "api_secret_env":
        if not isinstance(target, str) or not _ENV_NAME_RE.match(target):
            errors.append(f"{path(ref)}: must be the name of an environment variable, not the secret itself")
            return None
        value = env.get(target, "")
        if not value.strip():
            if _CONVENTIONAL_ENV_NAME_RE.match(target):
                errors.append(f"{path(ref)}: environment variable {target} is not set or empty; export it")
            else:  # possibly the secret itself pasted here: do not repeat it
                errors.append(
                    f"{path(ref)}: the environment variable it names is not set (name not shown, in case it is the "
                    "secret itself); give the NAME of a variable, e.g. DESK_A_SECRET, and export it"
                )
            return None
        return Secret(value.strip())
    if not isinstance(target, str) or not target:
        errors.append(f"{path(ref)}: must be a file path")
        return None
    try:
        with open(target, encoding="utf-8") as fh:
            value = fh.read().strip()
    except OSError as exc:
        # A bare word (no '/' or '.') may be a secret pasted by mistake: do not repeat it.
        shown = repr(target) if ("/" in target or "." in target) else "the file (name not shown)"
        errors.append(f"{path(ref)}: cannot read {shown}: {exc.strerror or type(exc).__name__}; give a file path")
        return None
    if not value:
        errors.append(f"{path(ref)}: {target!r} is empty")
        return None
    if ref == "rsa_private_key_file" and not is_pem(value):
        errors.append(f"{path(ref)}: {target!r} is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)")
        return None
    return Secret(value)


def _endpoints(raw: dict[str, Any], path, errors: list[str]) -> tuple[str | None, str | None, str | None]:
    environment = raw.get("environment")
    rest_url, ws_url = raw.get("rest_url"), raw.get("ws_url")
    if environment is not None and environment not in ENVIRONMENTS:
        errors.append(f"{path('environment')}: {environment!r} is not one of {', '.join(ENVIRONMENTS)}; "
                      "for another host set rest_url and ws_url")
        return None, None, None
    if environment is None and (rest_url or ws_url):
        environment = CUSTOM_ENVIRONMENT
        if not (rest_url and ws_url):
            missing = "ws_url" if rest_url else "rest_url"
            errors.append(f"{path(missing)}: set both rest_url and ws_url (or an environment) for a custom endpoint")
            return None, None, None
    environment = environment or "mainnet"
    default_rest, default_ws = ENVIRONMENTS.get(environment, (None, None))
    rest_url = rest_url or default_rest
    ws_url = ws_url or default_ws
    ok = True
    if not isinstance(rest_url, str) or not re.match(r"^https?://[^\s/]+", rest_url):
        errors.append(f"{path('rest_url')}: {rest_url!r} is not an http(s) URL like https://api.bybit.com")
        ok = False
    if not isinstance(ws_url, str) or not re.match(r"^wss?://[^\s/]+", ws_url):
        errors.append(f"{path('ws_url')}: {ws_url!r} is not a ws(s) URL like wss://stream.bybit.com/v5/private")
        ok = False
    if not ok:
        return None, None, None
    return environment, rest_url.rstrip("/"), ws_url


def _products(value: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list of products ({', '.join(PRODUCTS)})")
        return ()
    products = []
    for item in value:
        if item not in PRODUCTS:
            errors.append(f"{where}: {item!r} is not one of {', '.join(PRODUCTS)}")
        elif item not in products:
            products.append(item)
    return tuple(products)


def _desired_windows(value: Any, where: str, errors: list[str]) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{where}: must map products to seconds, e.g. {{DERIVATIVES: 10, SPOT: 10}}")
        return {}
    windows: dict[str, int] = {}
    for product, window in value.items():
        if product not in PRODUCTS:
            errors.append(f"{where}.{product}: unknown product; use {', '.join(PRODUCTS)}")
            continue
        if not valid_window(window):
            errors.append(
                f"{where}.{product}: {window!r} must be a whole number of seconds in [{MIN_WINDOW}, {MAX_WINDOW}] (Bybit's range)"
            )
            continue
        windows[product] = window
    return windows


def _seconds(
    raw: dict[str, Any],
    key: str,
    default: float | None,
    path,
    errors: list[str],
    *,
    low: float,
    high: float,
    inclusive: bool = False,
) -> float | None:
    """A positive duration in seconds: ``low < value <= high`` (``low <= value`` when inclusive)."""
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.append(f"{path(key)}: {value!r} is not a number of seconds")
        return None
    value = float(value)
    too_low = value < low if inclusive else value <= low
    if too_low or value > high:
        bound = f"at least {low:g}" if inclusive else f"more than {low:g}"
        extra = ""
        if key == "settle_seconds":
            extra = " (Bybit asks to wait 10 s before checking a new setting)"
        errors.append(f"{path(key)}: {value:g} must be {bound} and at most {high:g} seconds{extra}")
        return None
    return value


def _did_you_mean(key: str, options: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(key, options, n=1)
    return f"; did you mean {close[0]}?" if close else f"; known settings: {', '.join(options)}"
