"""Typed, validated configuration from the environment (one account) or a YAML file (many).

One table, :data:`SETTINGS` (``settings.py``), describes every account setting: its YAML key,
the check that validates and converts its value (``checks.py``), its default, and the
``BYBIT_*`` variable that sets it in the quick start with the way that variable's text is read
(``environment.py``). Both sources go through the same per-setting checks, then the rules that
relate settings to each other (``rules.py``), so a setting is added by adding one row.

Secrets are never written inline: a YAML account names an environment variable
(``api_secret_env``) or a file (``api_secret_file``, ``rsa_private_key_file``). Validation
collects every problem, names each by its field path (``accounts[1].desired_windows.SPOT``)
with the fix, and never repeats a secret value.

This package's public names are the ones below; the modules are its inside.
"""

from .checks import DRILL_CUTS, DRILL_SIDES, drill_settings
from .loading import build_config, load_config, parse_listen_address
from .model import (
    CUSTOM_ENVIRONMENT,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_PING_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_PONG_TIMEOUT,
    DEFAULT_SETTLE_SECONDS,
    DEFAULT_TELEMETRY_PATH,
    ENVIRONMENTS,
    LOG_FORMATS,
    LOG_LEVELS,
    MODES,
    QUICK_START_ACCOUNT_NAME,
    AccountConfig,
    Config,
    ConfigError,
    DrillSettings,
    GuardianLiveness,
)
from .settings import SETTINGS, Setting

__all__ = [
    "CUSTOM_ENVIRONMENT",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_PONG_TIMEOUT",
    "DEFAULT_SETTLE_SECONDS",
    "DEFAULT_TELEMETRY_PATH",
    "DRILL_CUTS",
    "DRILL_SIDES",
    "ENVIRONMENTS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MODES",
    "QUICK_START_ACCOUNT_NAME",
    "SETTINGS",
    "AccountConfig",
    "Config",
    "ConfigError",
    "DrillSettings",
    "GuardianLiveness",
    "Setting",
    "build_config",
    "drill_settings",
    "load_config",
    "parse_listen_address",
]
