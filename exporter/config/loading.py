"""Loading: the YAML file or the ``BYBIT_*`` quick start, and the command-line flags, into a :class:`Config`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from ..secrets import Secret, mask_key
from .accounts import account_config
from .checks import reporter
from .environment import host_key
from .files import CONFIG_FILE_LIMIT, FileProblem, YamlProblem, collecting_warnings, load_yaml, read_regular_file
from .model import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    LOG_FORMATS,
    LOG_LEVEL_ALIASES,
    LOG_LEVELS,
    QUICK_START_ACCOUNT_NAME,
    AccountConfig,
    Config,
    ConfigError,
)
from .rules import Checked, resolve_api_key, resolve_api_secret
from .settings import SETTING_BY_NAME, SETTINGS


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
    with collecting_warnings() as warnings:  # e.g. a secret file others can read
        if config_file:
            accounts = _accounts_from_file(config_file, env, errors)
        else:
            accounts = _accounts_from_env(env, errors)
    config = build_config(
        accounts,
        listen_address=listen_address,
        telemetry_path=telemetry_path,
        log_level=log_level,
        log_format=log_format,
        errors=errors,
    )
    return dataclasses.replace(config, warnings=tuple(warnings))


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
        log_level=_log_level(log_level),
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


def _log_level(text: str) -> str:
    """The level's own name: ``warn`` (as the Go exporters spell it) is ``warning``."""
    level = text.lower()
    return LOG_LEVEL_ALIASES.get(level, level)


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
    if _log_level(log_level) not in LOG_LEVELS:
        errors.append(f"--log.level: {log_level!r} is not one of {', '.join(LOG_LEVELS)} (or warn for warning)")
    if log_format.lower() not in LOG_FORMATS:
        errors.append(f"--log.format: {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    return errors


def _accounts_from_env(env: Mapping[str, str], errors: list[str]) -> list[AccountConfig]:
    """The quick start: one account from the ``BYBIT_*`` variables of the table, each read as its row says."""
    raw: dict[str, Any] = {"name": QUICK_START_ACCOUNT_NAME}
    for setting in SETTINGS:
        if setting.env and env.get(setting.env):
            raw[setting.name] = setting.read_env(env[setting.env], setting.env, reporter(setting.env, errors))
    account = account_config(raw, _env_path, env, errors, credentials=_quick_start_credentials).config
    return [account] if account else []


def _quick_start_credentials(checked: Checked, env: Mapping[str, str]) -> tuple[str | None, Secret | None]:
    """The key and the secret from their variables; what is missing or doubled is said in the
    variables' names, beside every other problem of the quick start."""
    key_set = bool(env.get("BYBIT_API_KEY"))
    secret_set, file_set = bool(env.get("BYBIT_API_SECRET")), bool(env.get("BYBIT_API_SECRET_FILE"))
    api_key = resolve_api_key(checked, env) if key_set else None
    if not key_set:  # the first thing a newcomer sees: every way to start, the secret included
        checked.errors.append(
            "BYBIT_API_KEY: not set; set BYBIT_API_KEY and BYBIT_API_SECRET (or BYBIT_API_SECRET_FILE), "
            "or pass --config.file for a YAML file with accounts (or --demo to try the exporter without credentials)"
        )
    if secret_set and file_set:
        checked.errors.append(
            "BYBIT_API_SECRET_FILE: set either BYBIT_API_SECRET or BYBIT_API_SECRET_FILE, not both; unset one"
        )
        return api_key, None
    if not secret_set and not file_set:
        if key_set:
            checked.errors.append(
                "BYBIT_API_SECRET: not set; set BYBIT_API_SECRET or BYBIT_API_SECRET_FILE (a file holding the secret)"
            )
        return api_key, None
    return api_key, resolve_api_secret(checked, env)


def _env_path(name: str) -> str:
    """Quick-start problems name the variable to fix."""
    return SETTING_BY_NAME[name].env or name


def _accounts_from_file(path: str, env: Mapping[str, str], errors: list[str]) -> list[AccountConfig]:
    data = _read_yaml_file(path, errors)
    if data is _UNREADABLE:
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
    writers: dict[tuple[str, str], tuple[int, str | None]] = {}  # (api key, REST host) -> the account using it
    for i, raw in enumerate(raw_accounts):
        where = f"accounts[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{where}: must be a mapping of settings")
            continue
        # The checks across accounts run on what each account's own checks could read, problems
        # or not, so a name used twice is reported with the rest, not after they are fixed.
        account = account_config(raw, _yaml_paths(where), env, errors)
        if account.name is not None:
            if account.name in seen:
                errors.append(
                    f"{where}.name: {account.name!r} is already used by accounts[{seen[account.name]}]; "
                    "names must be unique (each labels its account's metrics)"
                )
            else:
                seen[account.name] = i
        if account.api_key is not None and account.rest_url is not None:
            # One host however it is written: https://api.bybit.com and https://API.bybit.com:443/.
            first = writers.setdefault((account.api_key, host_key(account.rest_url)), (i, account.name))
            if first[0] != i:
                errors.append(
                    f"{where}.api_key: {_named(account.name)} uses the API key {mask_key(account.api_key)} of "
                    f"accounts[{first[0]}] ({_named(first[1])}) on the same environment: that is one Bybit account, "
                    "and two writers would flip its DCP window back and forth; watch it once"
                )
        if account.config is not None:
            accounts.append(account.config)
    return accounts


def _named(name: str | None) -> str:
    return repr(name) if name is not None else "an account without a valid name"


_UNREADABLE = object()


def _read_yaml_file(path: str, errors: list[str]) -> Any:
    """The file's YAML document, or ``_UNREADABLE`` after saying why (a regular file, bounded, strict YAML)."""
    try:
        return load_yaml(read_regular_file(path, CONFIG_FILE_LIMIT))
    except OSError as exc:
        errors.append(f"--config.file: cannot read {path!r}: {exc.strerror or exc}")
    except FileProblem as exc:
        errors.append(f"--config.file: {path!r} {exc}")
    except YamlProblem as exc:
        errors.append(f"--config.file: {path!r} is refused: {exc}")
    except RecursionError:
        errors.append(f"--config.file: {path!r} is not readable YAML (nested too deeply)")
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        errors.append(f"--config.file: {path!r} is not valid YAML{at}; fix the syntax")
    return _UNREADABLE


def _yaml_paths(where: str) -> Callable[[str], str]:
    """Problems in a YAML account name its field path: ``accounts[1].desired_windows``."""
    return lambda name: f"{where}.{name}"
