"""The configuration's values: accounts, the whole configuration, and the error that lists every problem."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..dcp import MIN_SETTLE_SECONDS
from ..secrets import MASK, Secret
from .environment import REGIONAL_ENVIRONMENTS

MODES = ("observer", "guardian")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Other words for a level: the Prometheus exporters written in Go take --log.level=warn.
LOG_LEVEL_ALIASES = {"warn": "warning"}
LOG_FORMATS = ("logfmt", "json")
# Bybit recommends a ping every 20 s ("we recommend that you send the ping heartbeat packet
# every 20 seconds", docs/v5/websocket/wss-authentication.mdx)
DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PONG_TIMEOUT = 10.0
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_SETTLE_SECONDS = MIN_SETTLE_SECONDS
DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9842"
DEFAULT_TELEMETRY_PATH = "/metrics"
QUICK_START_ACCOUNT_NAME = "default"  # the quick start's account when BYBIT_ACCOUNT is not set

# Bybit's public endpoints (from Bybit's V5 documentation), then the regional sites by name
# (environment.REGIONAL_ENVIRONMENTS; "" for a site with no documented private stream).
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "mainnet": ("https://api.bybit.com", "wss://stream.bybit.com/v5/private"),
    "testnet": ("https://api-testnet.bybit.com", "wss://stream-testnet.bybit.com/v5/private"),
    "demo": ("https://api-demo.bybit.com", "wss://stream-demo.bybit.com/v5/private"),
    **{name: (site.rest_url, site.ws_url or "") for name, site in REGIONAL_ENVIRONMENTS.items()},
}
CUSTOM_ENVIRONMENT = "custom"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONVENTIONAL_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")

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


MAX_PROBLEM_LENGTH = 500  # characters of one problem line: it points at a value, it does not reproduce it


def _shortened(problem: str) -> str:
    """One problem cut to a readable line (a pasted blob or an expanded alias must not fill the terminal)."""
    if len(problem) <= MAX_PROBLEM_LENGTH:
        return problem
    return problem[:MAX_PROBLEM_LENGTH] + f"... ({len(problem) - MAX_PROBLEM_LENGTH} more characters)"


class ConfigError(Exception):
    """Every validation problem at once; each line names a field path and the fix.

    Problems echo what was written so it can be found; a word that may be a key or a secret
    is masked whatever check reported it.
    """

    def __init__(self, errors: list[str]) -> None:
        self.errors = [_shortened(hide_credentials(e)) for e in errors]
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
    warnings: tuple[str, ...] = ()  # things that work but should not be so (a secret file others can read)

    def secrets(self) -> list[str]:
        """Every secret value, for the log filter's defence in depth."""
        tokens = [a.guardian_liveness.token for a in self.accounts if a.guardian_liveness]
        return [a.api_secret.reveal() for a in self.accounts if a.api_secret] + [t.reveal() for t in tokens if t]

    def api_keys(self) -> list[str]:
        return [a.api_key for a in self.accounts if a.api_key]
