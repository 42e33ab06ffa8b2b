"""The one table of account settings: YAML key, check, default, and quick-start variable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checks import (
    Check,
    Seconds,
    VariableName,
    check_account_name,
    check_api_key_text,
    check_desired_windows,
    check_drill,
    check_environment,
    check_file_path,
    check_guardian_liveness,
    check_mode,
    check_number_of_seconds,
    check_products,
    check_reassert_policy,
    check_rest_url,
    check_true_or_false,
    check_ws_url,
)
from .environment import (
    EnvReader,
    read_comma_list,
    read_product_seconds,
    read_seconds,
    read_stripped,
    read_this_variable,
    read_verbatim,
)
from .model import DEFAULT_PING_INTERVAL, DEFAULT_POLL_INTERVAL, DEFAULT_PONG_TIMEOUT, DEFAULT_SETTLE_SECONDS


@dataclass(frozen=True)
class Setting:
    """One account setting: the YAML key, its check and default, and its quick-start variable."""

    name: str
    check: Check
    default: Any = None  # the value when not given; None: none, or derived by a rule
    required: bool = False  # when not given, the check sees None and says what is missing
    env: str | None = None  # the BYBIT_* variable that sets it without a YAML file
    read_env: EnvReader = read_verbatim


SETTINGS: tuple[Setting, ...] = (
    Setting("name", check_account_name, required=True, env="BYBIT_ACCOUNT"),
    Setting("api_key", check_api_key_text, env="BYBIT_API_KEY"),
    Setting("api_key_env", VariableName("must be the name of an environment variable")),
    Setting(
        "api_secret_env",
        VariableName("must be the name of an environment variable, not the secret itself"),
        env="BYBIT_API_SECRET",
        read_env=read_this_variable,
    ),
    Setting("api_secret_file", check_file_path, env="BYBIT_API_SECRET_FILE"),
    Setting("rsa_private_key_file", check_file_path),
    Setting("environment", check_environment, default="mainnet", env="BYBIT_ENV", read_env=read_stripped),
    Setting("rest_url", check_rest_url, env="BYBIT_REST_URL", read_env=read_stripped),
    Setting("ws_url", check_ws_url, env="BYBIT_WS_URL", read_env=read_stripped),
    Setting("mode", check_mode, default="observer", env="BYBIT_MODE", read_env=read_stripped),
    Setting("guardian_products", check_products, default=(), env="BYBIT_GUARDIAN_PRODUCTS", read_env=read_comma_list),
    Setting(
        "ping_interval",
        Seconds(0.0, 300.0),
        default=DEFAULT_PING_INTERVAL,
        env="BYBIT_PING_INTERVAL",
        read_env=read_seconds,
    ),
    Setting(
        "pong_timeout",
        Seconds(0.0, 300.0),
        default=DEFAULT_PONG_TIMEOUT,
        env="BYBIT_PONG_TIMEOUT",
        read_env=read_seconds,
    ),
    Setting(
        "poll_interval",
        Seconds(0.0, 3600.0),
        default=DEFAULT_POLL_INTERVAL,
        env="BYBIT_POLL_INTERVAL",
        read_env=read_seconds,
    ),
    Setting(
        "max_active_time",
        Seconds(30.0, 600.0, inclusive=True),
        env="BYBIT_MAX_ACTIVE_TIME",
        read_env=read_seconds,
    ),
    Setting(
        "desired_windows", check_desired_windows, default={}, env="BYBIT_DESIRED_WINDOWS", read_env=read_product_seconds
    ),
    Setting("reassert", check_reassert_policy, default="off", env="BYBIT_REASSERT", read_env=read_stripped),
    Setting(
        "settle_seconds",
        check_number_of_seconds,  # its range: settle_seconds_in_range
        default=DEFAULT_SETTLE_SECONDS,
        env="BYBIT_SETTLE_SECONDS",
        read_env=read_seconds,
    ),
    Setting("allow_short_settle", check_true_or_false, default=False),
    Setting("guardian_liveness", check_guardian_liveness),
    Setting("drill", check_drill),
)
SETTING_BY_NAME = {setting.name: setting for setting in SETTINGS}
