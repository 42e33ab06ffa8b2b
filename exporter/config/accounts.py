"""One account: the unknown-key check, each setting by its row, then the rules, into an :class:`AccountConfig`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..secrets import Secret
from .checks import did_you_mean, reporter
from .environment import stream_needs_ws_url
from .model import INLINE_SECRET_FIELDS, AccountConfig
from .rules import (
    Checked,
    drill_only_for_an_observer,
    enforce_needs_desired_windows,
    guardian_products_match_mode,
    liveness_needs_guardian_and_its_token,
    pong_before_next_ping,
    resolve_api_key,
    resolve_api_secret,
    resolve_endpoints,
    settle_seconds_in_range,
)
from .settings import SETTING_BY_NAME, SETTINGS

# (the account after its per-setting pass, the environment) -> its API key and secret, each None
# after reporting why it cannot be had.
Credentials: TypeAlias = Callable[[Checked, Mapping[str, str]], tuple[str | None, Secret | None]]


def file_credentials(checked: Checked, env: Mapping[str, str]) -> tuple[str | None, Secret | None]:
    """A YAML account's key (api_key or api_key_env) and its one secret reference."""
    return resolve_api_key(checked, env), resolve_api_secret(checked, env)


@dataclass(frozen=True)
class CheckedAccount:
    """One account after every check: its configuration when it has no problem, and what tells it
    from the others (name, API key, REST host) as far as they could be read even when it has one,
    so the checks across a file's accounts still run and every problem is reported at once."""

    config: AccountConfig | None
    name: str | None
    api_key: str | None
    rest_url: str | None


def account_config(
    raw: Mapping[Any, Any],
    path: Callable[[str], str],
    env: Mapping[str, str],
    errors: list[str],
    *,
    credentials: Credentials = file_credentials,
) -> CheckedAccount:
    """Validate one account's raw settings; append every problem to ``errors``."""
    before = len(errors)
    _refuse_unknown_keys(raw, path, errors)
    checked = _check_each_setting(raw, path, errors)
    api_key, api_secret = credentials(checked, env)
    endpoints = resolve_endpoints(checked)
    stream_needs_ws_url(checked, endpoints)
    guardian_products_match_mode(checked)
    pong_before_next_ping(checked)
    enforce_needs_desired_windows(checked)
    settle_seconds = settle_seconds_in_range(checked)
    liveness = liveness_needs_guardian_and_its_token(checked, env)
    drill_only_for_an_observer(checked, endpoints)
    rest_url = endpoints[1] if endpoints else None
    if len(errors) > before:
        return CheckedAccount(None, checked.values["name"], api_key, rest_url)
    # Every check and rule reports when it yields None, so with no problems all are set.
    assert api_key is not None and api_secret is not None and endpoints is not None and settle_seconds is not None
    values = checked.values
    environment, rest_url, ws_url = endpoints
    config = AccountConfig(
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
    return CheckedAccount(config, config.name, api_key, rest_url)


def _refuse_unknown_keys(raw: Mapping[Any, Any], path: Callable[[str], str], errors: list[str]) -> None:
    """Only the table's settings exist; an inline secret is refused without its value, a typo gets a hint."""
    for key in raw:
        if key in INLINE_SECRET_FIELDS:
            errors.append(
                f"{path(key)}: secrets are never written inline; use api_secret_env (the name of an environment "
                "variable holding the secret) or api_secret_file (a file holding it), or rsa_private_key_file"
            )
        elif key not in SETTING_BY_NAME:
            errors.append(f"{path(str(key))}: unknown setting{did_you_mean(str(key), SETTING_BY_NAME)}")


def _check_each_setting(raw: Mapping[Any, Any], path: Callable[[str], str], errors: list[str]) -> Checked:
    """Each setting on its own, by its row's check; a null value counts as not given."""
    given = frozenset(key for key, value in raw.items() if value is not None)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in given or setting.required:
            values[setting.name] = setting.check(raw.get(setting.name), reporter(path(setting.name), errors))
        else:
            values[setting.name] = setting.default
    return Checked(values, given, path, errors)
