"""Configuration: environment quick start, YAML accounts, validation messages, no secrets shown."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from exporter.config import (
    ENVIRONMENTS,
    QUICK_START_ACCOUNT_NAME,
    SETTINGS,
    AccountConfig,
    ConfigError,
    load_config,
    parse_listen_address,
)
from exporter.secrets import Secret, mask_key

SECRET = "s3cr3t-value-never-shown"


def write(tmp_path, text: str, name: str = "config.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def errors_of(exc_info) -> list[str]:
    return exc_info.value.errors


# ------------------------------------------------------------------ environment quick start


def test_env_quick_start_defaults_to_mainnet_observer():
    config = load_config(env={"BYBIT_API_KEY": "key123456", "BYBIT_API_SECRET": SECRET})
    (account,) = config.accounts
    assert account.name == "default"
    assert account.api_key == "key123456"
    assert account.api_secret == Secret(SECRET)
    assert (account.environment, account.rest_url, account.ws_url) == ("mainnet", *ENVIRONMENTS["mainnet"])
    assert account.mode == "observer" and account.guardian_products == ()
    assert (account.ping_interval, account.pong_timeout, account.poll_interval) == (20.0, 10.0, 30.0)
    assert account.reassert == "off" and account.desired_windows == {}
    assert account.settle_seconds == 10.0


@pytest.mark.parametrize("env_name", ["testnet", "demo"])
def test_env_selects_bybit_urls(env_name):
    config = load_config(env={"BYBIT_API_KEY": "k" * 10, "BYBIT_API_SECRET": SECRET, "BYBIT_ENV": env_name})
    account = config.accounts[0]
    assert (account.rest_url, account.ws_url) == ENVIRONMENTS[env_name]
    assert account.environment == env_name


def test_env_urls_override_and_all_settings(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    config = load_config(
        env={
            "BYBIT_API_KEY": "key123456",
            "BYBIT_API_SECRET_FILE": str(secret_file),
            "BYBIT_REST_URL": "https://api.bybit.kz/",
            "BYBIT_WS_URL": "wss://stream.bybit.kz/v5/private",
            "BYBIT_MODE": "guardian",
            "BYBIT_GUARDIAN_PRODUCTS": "DERIVATIVES, SPOT",
            "BYBIT_DESIRED_WINDOWS": "DERIVATIVES=10,SPOT=15",
            "BYBIT_REASSERT": "enforce",
            "BYBIT_ACCOUNT": "desk-a",
        }
    )
    a = config.accounts[0]
    assert a.name == "desk-a"
    assert a.api_secret.reveal() == SECRET  # trailing newline of the file stripped
    assert a.rest_url == "https://api.bybit.kz" and a.ws_url == "wss://stream.bybit.kz/v5/private"
    assert a.environment == "custom"
    assert a.mode == "guardian" and a.guardian_products == ("DERIVATIVES", "SPOT")
    assert a.desired_windows == {"DERIVATIVES": 10, "SPOT": 15}
    assert a.reassert == "enforce"


def test_env_without_key_explains_the_choices():
    with pytest.raises(ConfigError) as exc:
        load_config(env={})
    (message,) = errors_of(exc)
    assert message.startswith("BYBIT_API_KEY:")
    assert "--config.file" in message and "BYBIT_API_SECRET" in message


def test_env_bad_desired_windows_named():
    with pytest.raises(ConfigError) as exc:
        load_config(
            env={"BYBIT_API_KEY": "k" * 8, "BYBIT_API_SECRET": SECRET, "BYBIT_DESIRED_WINDOWS": "SPOT=2,FUTURES=10,X"}
        )
    text = "\n".join(errors_of(exc))
    assert "BYBIT_DESIRED_WINDOWS.SPOT" in text and "[3, 300]" in text
    assert "BYBIT_DESIRED_WINDOWS.FUTURES" in text
    assert "'X' is not PRODUCT=SECONDS" in text


# ------------------------------------------------------------------ YAML file


GOOD = """
accounts:
  - name: desk-a
    api_key: AAAAAAAAAA
    api_secret_env: DESK_A_SECRET
    environment: testnet
    mode: guardian
    guardian_products: [DERIVATIVES]
    ping_interval: 15
    pong_timeout: 5
    poll_interval: 60
    max_active_time: 60
    desired_windows: {DERIVATIVES: 10}
    reassert: off
  - name: desk-b
    api_key_env: DESK_B_KEY
    api_secret_file: {secret_file}
    rest_url: http://127.0.0.1:9000
    ws_url: ws://127.0.0.1:9000/v5/private
    desired_windows: {SPOT: 20, DERIVATIVES: 300}
    reassert: enforce
    settle_seconds: 0.5
    allow_short_settle: true
"""


def test_yaml_many_accounts(tmp_path):
    secret_file = tmp_path / "b.secret"
    secret_file.write_text("bbb-secret\n")
    path = write(tmp_path, GOOD.replace("{secret_file}", str(secret_file)))
    config = load_config(path, env={"DESK_A_SECRET": "aaa-secret", "DESK_B_KEY": "BBBBBBBBBB"})
    a, b = config.accounts
    assert a.name == "desk-a" and a.api_secret.reveal() == "aaa-secret" and a.environment == "testnet"
    assert a.mode == "guardian" and a.guardian_products == ("DERIVATIVES",)
    assert (a.ping_interval, a.pong_timeout, a.poll_interval) == (15, 5, 60)
    assert a.reassert == "off"  # YAML's bare `off` is read as false; still means off
    assert a.stream_url == ENVIRONMENTS["testnet"][1] + "?max_active_time=60s"
    assert b.api_key == "BBBBBBBBBB" and b.api_secret.reveal() == "bbb-secret"
    assert b.environment == "custom" and b.rest_url == "http://127.0.0.1:9000"
    assert b.reassert == "enforce" and b.settle_seconds == 0.5
    assert sorted(config.secrets()) == ["aaa-secret", "bbb-secret"]


def test_rsa_private_key_file(tmp_path, rsa_pem_pair):
    pem = tmp_path / "key.pem"
    pem.write_text(rsa_pem_pair()[0])
    pem.chmod(0o600)
    path = write(tmp_path, f"accounts:\n  - {{name: r, api_key: KKKKKKKK, rsa_private_key_file: {pem}}}\n")
    (account,) = load_config(path, env={}).accounts
    assert account.api_secret.reveal().startswith("-----BEGIN PRIVATE KEY-----")


def test_inline_secret_rejected_without_echoing_it(tmp_path):
    path = write(tmp_path, f"accounts:\n  - name: a\n    api_key: KKKKKKKK\n    api_secret: {SECRET}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    text = str(exc.value)
    assert "accounts[0].api_secret" in text
    assert "api_secret_env" in text and "api_secret_file" in text
    assert SECRET not in text


def test_all_errors_collected_with_field_paths(tmp_path):
    path = write(
        tmp_path,
        """
        accounts:
          - name: ok
            api_key: KKKKKKKK
            api_secret_env: S
          - name: ok
            api_key: KKKKKKKK
            api_secret_env: S
          - name: "bad name!"
            api_key: KKKKKKKK
            api_secret_env: MISSING_VAR
            environment: moon
            mode: guardian
            ping_interval: 5
            pong_timeout: 5
            poll_interval: 0
            desired_windows: {SPOT: 2, FUTURES: 10, DERIVATIVES: "10"}
            reassert: enforce
            settle_seconds: 3
            pingInterval: 5
        """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={"S": SECRET})
    errors = errors_of(exc)
    text = "\n".join(errors)
    for expected in (
        "accounts[1].name: 'ok' is already used by accounts[0]",
        "accounts[2].name: 'bad name!'",
        "accounts[2].api_secret_env: environment variable MISSING_VAR is not set",
        "accounts[2].environment: 'moon'",
        "accounts[2].guardian_products: guardian mode needs",
        "accounts[2].pong_timeout: 5 s must be shorter than ping_interval (5 s)",
        "accounts[2].poll_interval",
        "accounts[2].desired_windows.SPOT: 2 must be a whole number of seconds in [3, 300]",
        "accounts[2].desired_windows.FUTURES: unknown product",
        "accounts[2].desired_windows.DERIVATIVES: '10'",
        "accounts[2].settle_seconds: 3 must be at least 10",
        "accounts[2].pingInterval: unknown setting; did you mean ping_interval?",
    ):
        assert expected in text, f"missing: {expected}\n{text}"
    assert SECRET not in text


def test_enforce_needs_desired_windows(tmp_path):
    path = write(tmp_path, "accounts:\n  - {name: a, api_key: KKKKKKKK, api_secret_env: S, reassert: enforce}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={"S": "x" * 10})
    assert errors_of(exc) == [
        "accounts[0].reassert: enforce needs desired_windows (e.g. DERIVATIVES: 10); set them or use dry-run/off"
    ]


def test_observer_with_guardian_products_is_an_error(tmp_path):
    path = write(
        tmp_path, "accounts:\n  - {name: a, api_key: KKKKKKKK, api_secret_env: S, guardian_products: [SPOT]}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={"S": "x" * 10})
    assert "accounts[0].guardian_products: only used in guardian mode" in errors_of(exc)[0]


def test_one_url_overrides_that_url_of_the_environment(tmp_path):
    """rest_url or ws_url alone replaces that URL of the environment (mainnet unless set); the other
    stays Bybit's, e.g. a proxy in front of Bybit's REST beside the stream."""
    path = write(
        tmp_path,
        """
        accounts:
          - {name: a, api_key: K1234567, api_secret_env: S, rest_url: 'https://rest-proxy.desk/'}
          - {name: b, api_key: K7654321, api_secret_env: S, ws_url: 'wss://proxy.desk:8443/v5/private'}
          - {name: c, api_key: K2345678, api_secret_env: S, environment: testnet, ws_url: 'wss://proxy.desk/v5'}
        """,
    )
    a, b, c = load_config(path, env={"S": "x" * 10}).accounts
    assert (a.environment, a.rest_url, a.ws_url) == ("mainnet", "https://rest-proxy.desk", ENVIRONMENTS["mainnet"][1])
    assert (b.environment, b.rest_url, b.ws_url) == (
        "mainnet",
        ENVIRONMENTS["mainnet"][0],
        "wss://proxy.desk:8443/v5/private",
    )
    assert (c.environment, c.rest_url, c.ws_url) == ("testnet", ENVIRONMENTS["testnet"][0], "wss://proxy.desk/v5")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BYBIT_REST_URL", "https://rest-proxy.desk", ("https://rest-proxy.desk", ENVIRONMENTS["mainnet"][1])),
        (
            "BYBIT_WS_URL",
            "ws://127.0.0.1:9000/v5/private",
            (ENVIRONMENTS["mainnet"][0], "ws://127.0.0.1:9000/v5/private"),
        ),
    ],
)
def test_env_one_url_overrides_that_url_of_mainnet(variable, value, expected):
    config = load_config(env={"BYBIT_API_KEY": "k" * 8, "BYBIT_API_SECRET": SECRET, variable: value})
    (account,) = config.accounts
    assert account.environment == "mainnet" and (account.rest_url, account.ws_url) == expected


def test_one_url_of_another_bybit_environment_is_refused_naming_the_key(tmp_path):
    """testnet's REST host beside mainnet's stream would send one environment's key to the other's
    host, which refuses it: refused, with the environment to set; other problems come with it."""
    path = write(
        tmp_path,
        "accounts:\n  - {name: a, api_key: K1234567, api_secret_env: S, rest_url: 'https://api-testnet.bybit.com',"
        " ping_interval: -1}\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={"S": "x" * 10})
    errors = errors_of(exc)
    (problem,) = [e for e in errors if e.startswith("accounts[0].rest_url:")]
    assert "testnet's URL while ws_url stays mainnet's" in problem and "API key" in problem
    assert "set environment: testnet" in problem
    assert any(e.startswith("accounts[0].ping_interval:") for e in errors)
    with pytest.raises(ConfigError) as exc:
        load_config(env={"BYBIT_API_KEY": "k" * 8, "BYBIT_API_SECRET": SECRET, "BYBIT_WS_URL": ENVIRONMENTS["demo"][1]})
    (problem,) = errors_of(exc)
    assert problem.startswith("BYBIT_WS_URL: is demo's URL while BYBIT_REST_URL stays mainnet's")
    assert "set BYBIT_ENV=demo" in problem


def test_a_name_used_twice_is_reported_with_the_accounts_other_problems(tmp_path):
    """The checks across accounts run even on accounts with problems of their own: one run names
    the doubled name, the doubled key and each account's own problems."""
    path = write(
        tmp_path,
        """
        accounts:
          - {name: desk, api_key: KEY1234567, api_secret_env: S, ping_interval: -1}
          - {name: desk, api_key: KEY1234567, api_secret_env: S, desired_windows: {SPOT: 2}}
          - {name: other, api_key: KEY1234567, api_secret_env: S, mode: sentinel}
        """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={"S": SECRET})
    text = "\n".join(errors_of(exc))
    for expected in (
        "accounts[0].ping_interval: -1 must be more than 0",
        "accounts[1].name: 'desk' is already used by accounts[0]",
        "accounts[1].desired_windows.SPOT: 2 must be a whole number",
        "accounts[1].api_key: 'desk' uses the API key",
        "accounts[2].mode: 'sentinel'",
        "accounts[2].api_key: 'other' uses the API key KEY***67 of accounts[0] ('desk')",
    ):
        assert expected in text, f"missing: {expected}\n{text}"
    assert SECRET not in text


def test_env_both_secrets_reported_with_the_other_problems(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    env = {
        "BYBIT_API_KEY": "k" * 8,
        "BYBIT_API_SECRET": SECRET,
        "BYBIT_API_SECRET_FILE": str(secret_file),
        "BYBIT_ENV": "moon",
        "BYBIT_DESIRED_WINDOWS": "SPOT=2",
        "BYBIT_PING_INTERVAL": "soon",
    }
    with pytest.raises(ConfigError) as exc:
        load_config(env=env)
    text = "\n".join(errors_of(exc))
    for expected in (
        "BYBIT_API_SECRET_FILE: set either BYBIT_API_SECRET or BYBIT_API_SECRET_FILE, not both",
        "BYBIT_ENV: 'moon' is not one of",
        "BYBIT_DESIRED_WINDOWS.SPOT: 2 must be a whole number",
        "BYBIT_PING_INTERVAL: 'soon' is not a number of seconds",
    ):
        assert expected in text, f"missing: {expected}\n{text}"
    assert SECRET not in text


def test_env_missing_key_reported_with_the_other_problems():
    with pytest.raises(ConfigError) as exc:
        load_config(env={"BYBIT_API_SECRET": SECRET, "BYBIT_MODE": "sentinel"})
    errors = errors_of(exc)
    assert [e.split(":")[0] for e in errors] == ["BYBIT_MODE", "BYBIT_API_KEY"], errors
    with pytest.raises(ConfigError) as exc:
        load_config(env={"BYBIT_API_KEY": "k" * 8, "BYBIT_API_SECRET_FILE": "/nonexistent/secret", "BYBIT_ENV": "x"})
    assert sorted(e.split(":")[0] for e in errors_of(exc)) == ["BYBIT_API_SECRET_FILE", "BYBIT_ENV"]


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(str(tmp_path / "nope.yml"), env={})
    assert errors_of(exc)[0].startswith("--config.file: cannot read")
    path = write(tmp_path, "accounts: [\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert "not valid YAML at line" in errors_of(exc)[0]
    path = write(tmp_path, "accounts: []\nweb: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert {e.split(":")[0] for e in errors_of(exc)} == {"web", "accounts"}


def test_flags_validated():
    with pytest.raises(ConfigError) as exc:
        load_config(
            env={"BYBIT_API_KEY": "k" * 8, "BYBIT_API_SECRET": SECRET},
            listen_address="9842",
            telemetry_path="metrics",
            log_level="loud",
            log_format="xml",
        )
    prefixes = sorted(e.split(":")[0] for e in errors_of(exc))
    assert prefixes == ["--log.format", "--log.level", "--web.listen-address", "--web.telemetry-path"]


@pytest.mark.parametrize("written", ["warn", "WARN", "warning"])
def test_log_level_warn_is_warning(written):
    """The Prometheus exporters written in Go take --log.level=warn; so does this one."""
    config = load_config(env={"BYBIT_API_KEY": "k" * 8, "BYBIT_API_SECRET": SECRET}, log_level=written)
    assert config.log_level == "warning"


def test_parse_listen_address():
    assert parse_listen_address(":9842") == ("0.0.0.0", 9842)
    assert parse_listen_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen_address("[::1]:9842") == ("::1", 9842)
    with pytest.raises(ValueError):
        parse_listen_address("localhost")


def test_repr_and_key_mask_hide_credentials():
    config = load_config(env={"BYBIT_API_KEY": "ABCDEFGHIJKL", "BYBIT_API_SECRET": SECRET})
    text = repr(config)
    assert SECRET not in text and "ABCDEFGHIJKL" not in text
    assert mask_key("ABCDEFGHIJKL") == "ABC***KL"


def test_secret_pasted_into_api_secret_env_is_not_repeated(tmp_path):
    pasted = "xZ9kQ2mN7pL4vB8cR1tY6wE3"  # looks like a Bybit secret, also a valid variable name
    path = write(tmp_path, f"accounts:\n  - {{name: a, api_key: 12345678, api_secret_env: {pasted}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    (message,) = errors_of(exc)
    assert message.startswith("accounts[0].api_secret_env:") and "NAME of a variable" in message
    assert pasted not in message


def test_numeric_api_key_is_read_as_text(tmp_path):
    path = write(tmp_path, "accounts:\n  - {name: a, api_key: 12345678, api_secret_env: S}\n")
    assert load_config(path, env={"S": "x" * 10}).accounts[0].api_key == "12345678"


def test_secret_pasted_into_api_secret_file_is_not_repeated(tmp_path):
    pasted = "xZ9kQ2mN7pL4vB8cR1tY6wE3"
    path = write(tmp_path, f"accounts:\n  - {{name: a, api_key: KKKKKKKK, api_secret_file: {pasted}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert pasted not in str(exc.value) and "accounts[0].api_secret_file: cannot read" in str(exc.value)


# ------------------------------------------------------------------ the table of settings drives all three uses

BY_NAME = {setting.name: setting for setting in SETTINGS}
CONFIG_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def env_name(setting_name: str) -> str:
    variable = BY_NAME[setting_name].env
    assert variable, f"{setting_name} has no BYBIT_* variable"
    return variable


# For each setting the quick start reads: (its variable's text, other settings it needs as text,
# the AccountConfig attribute it lands in, the expected value). "{secret_file}" is a file of SECRET.
ENV_SAMPLES: dict[str, tuple[str, dict[str, str], str, object]] = {
    "name": ("desk-z", {}, "name", "desk-z"),
    "api_key": ("KEY-FROM-ENV", {}, "api_key", "KEY-FROM-ENV"),
    "api_secret_env": ("another-secret", {}, "api_secret", Secret("another-secret")),
    "api_secret_file": ("{secret_file}", {}, "api_secret", Secret(SECRET)),
    "environment": ("testnet", {}, "rest_url", ENVIRONMENTS["testnet"][0]),
    "rest_url": ("https://rest-proxy.desk", {"environment": "demo"}, "rest_url", "https://rest-proxy.desk"),
    "ws_url": (
        "wss://stream-proxy.desk/v5/private",
        {"environment": "demo"},
        "ws_url",
        "wss://stream-proxy.desk/v5/private",
    ),
    "mode": ("guardian", {"guardian_products": "SPOT"}, "mode", "guardian"),
    "guardian_products": ("SPOT, OPTIONS", {"mode": "guardian"}, "guardian_products", ("SPOT", "OPTIONS")),
    "ping_interval": ("25", {}, "ping_interval", 25.0),
    "pong_timeout": ("5", {}, "pong_timeout", 5.0),
    "poll_interval": ("60", {}, "poll_interval", 60.0),
    "max_active_time": ("120", {}, "max_active_time", 120.0),
    "desired_windows": ("SPOT=20", {}, "desired_windows", {"SPOT": 20}),
    "reassert": ("dry-run", {}, "reassert", "dry-run"),
    "settle_seconds": ("12.5", {}, "settle_seconds", 12.5),
}


def test_every_setting_with_a_variable_has_a_sample():
    assert set(ENV_SAMPLES) == {setting.name for setting in SETTINGS if setting.env}


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.env], ids=lambda s: s.env)
def test_each_variable_sets_its_setting(setting, tmp_path):
    text, companions, attribute, expected = ENV_SAMPLES[setting.name]
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    env = {env_name("api_key"): "key123456", env_name("api_secret_env"): SECRET}
    if setting.name == "api_secret_file":
        del env[env_name("api_secret_env")]
    env |= {env_name(name): value for name, value in companions.items()}
    env[setting.env] = text.format(secret_file=secret_file)
    (account,) = load_config(env=env).accounts
    assert getattr(account, attribute) == expected


# Credentials are free text: any value is a valid key or secret.
FREE_TEXT = {"api_key", "api_secret_env"}


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.env and s.name not in FREE_TEXT], ids=lambda s: s.env)
def test_a_bad_variable_is_named_in_its_problem(setting):
    env = {env_name("api_key"): "key123456", env_name("api_secret_env"): SECRET, setting.env: "not a value!"}
    if setting.name == "api_secret_file":
        del env[env_name("api_secret_env")]
    with pytest.raises(ConfigError) as exc:
        load_config(env=env)
    assert any(e.startswith(f"{setting.env}:") or e.startswith(f"{setting.env}.") for e in errors_of(exc)), exc.value


def yaml_account(tmp_path, **settings) -> str:
    account = {"name": "a", "api_key": "KKKKKKKK", "api_secret_env": "S"} | settings
    return write(tmp_path, yaml.safe_dump({"accounts": [account]}))


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_each_yaml_setting_is_known_and_checked_by_its_row(setting, tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(yaml_account(tmp_path, **{setting.name: ["not", "a", "value"]}), env={"S": SECRET})
    errors = errors_of(exc)
    assert not any("unknown setting" in e for e in errors), errors
    assert any(e.startswith(f"accounts[0].{setting.name}:") for e in errors), errors


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_a_misspelt_setting_is_refused_with_a_hint(setting, tmp_path):
    typo = setting.name + "x"
    with pytest.raises(ConfigError) as exc:
        load_config(yaml_account(tmp_path, **{typo: 1}), env={"S": SECRET})
    assert errors_of(exc) == [f"accounts[0].{typo}: unknown setting; did you mean {setting.name}?"]


def test_an_unlike_setting_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(yaml_account(tmp_path, zzz=1), env={"S": SECRET})
    (message,) = errors_of(exc)
    assert message == f"accounts[0].zzz: unknown setting; known settings: {', '.join(BY_NAME)}"


def test_table_defaults_are_the_account_defaults():
    account_defaults = {
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(AccountConfig)
    }
    shared = [s for s in SETTINGS if s.name in account_defaults and s.default is not None]
    assert {s.name for s in shared} >= {"environment", "mode", "ping_interval", "reassert", "settle_seconds"}
    for setting in shared:
        assert setting.default == account_defaults[setting.name], setting.name


def guide_table(header: str) -> list[tuple[list[str], str]]:
    """The rows of the configuration guide's table under ``header``: (the names in the first cell, the default cell)."""
    lines = CONFIG_GUIDE.read_text(encoding="utf-8").splitlines()
    start = lines.index(header) + 2  # past the header and the |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        first, default, *_ = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((re.findall(r"`([^`]+)`", first), default))
    return rows


def shown(value: object) -> str:
    """A default as the configuration guide writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_guide_defaults(rows, setting_of, *, quick_start: bool) -> None:
    """A blank default cell means none; a `literal` one is the table's default as written."""
    for names, default in rows:
        for name in names:
            setting = setting_of(name)
            literal = re.fullmatch(r"`([^`]+)`", default)
            if default == "":
                assert not setting.required and setting.default in (None, (), {}), name
            elif literal:
                if quick_start and setting.name == "name":
                    assert literal[1] == QUICK_START_ACCOUNT_NAME, name
                else:
                    assert literal[1] == shown(setting.default), name


def test_the_configuration_guide_lists_every_variable_of_the_table():
    rows = guide_table("| variable | default | meaning |")
    assert sorted(n for names, _ in rows for n in names) == sorted(s.env for s in SETTINGS if s.env)
    by_env = {s.env: s for s in SETTINGS if s.env}
    check_guide_defaults(rows, by_env.__getitem__, quick_start=True)


def test_the_configuration_guide_lists_every_setting_of_the_table():
    rows = guide_table("| field | default | meaning |")
    assert sorted(n for names, _ in rows for n in names) == sorted(BY_NAME)
    assert {n for names, default in rows if default == "(required)" for n in names} == {
        s.name for s in SETTINGS if s.required
    }
    check_guide_defaults(rows, BY_NAME.__getitem__, quick_start=False)


def test_a_number_too_big_for_a_float_is_a_clear_error_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("DESK_SECRET", SECRET)
    path = write(
        tmp_path,
        f"""
        accounts:
          - name: desk
            api_key: KEY1234567
            api_secret_env: DESK_SECRET
            ping_interval: {10**400}
        """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={"DESK_SECRET": SECRET})
    [problem] = errors_of(exc)
    assert problem.startswith("accounts[0].ping_interval: ") and "is not a number of seconds" in problem
    assert len(problem) < 200  # the number is shown cut short, not in its 400 digits


# ------------------------------------------------------------------ regional environments, hosts


def one_account(tmp_path, **settings) -> str:
    account = {"name": "desk", "api_key": "key123456", "api_secret_env": "DESK_SECRET", **settings}
    return write(tmp_path, yaml.safe_dump({"accounts": [account]}))


@pytest.mark.parametrize(
    "name,rest,ws",
    [
        ("tr", "https://api.bybit.tr", "wss://stream.bybit.tr/v5/private"),
        ("id", "https://api.bybit.id", "wss://stream.bybit.id/v5/private"),
        ("kz", "https://api.bybit.kz", "wss://stream.bybit.kz/v5/private"),
        ("ge", "https://api.bybitgeorgia.ge", "wss://stream.bybitgeorgia.ge/v5/private"),
        ("jp", "https://api.manepa.jp", "wss://stream.manepa.jp/v5/private"),
    ],
)
def test_a_regional_site_with_a_private_stream_is_available_by_name(tmp_path, name, rest, ws):
    """bybit-exchange/docs: docs/v5/guide.mdx (REST hosts), docs/v5/websocket/wss-authentication.mdx (streams)."""
    (account,) = load_config(one_account(tmp_path, environment=name), env={"DESK_SECRET": SECRET}).accounts
    assert (account.environment, account.rest_url, account.ws_url) == (name, rest, ws)


@pytest.mark.parametrize(
    "name,rest",
    [
        ("nl", "https://api.bybit.nl"),
        ("ae", "https://api.bybit.ae"),
        ("eu", "https://api.bybit.eu"),
        ("jp-testnet", "https://api-testnet.manepa.jp"),
    ],
)
def test_a_rest_only_site_needs_ws_url_and_says_so(tmp_path, name, rest):
    with pytest.raises(ConfigError) as exc:
        load_config(one_account(tmp_path, environment=name), env={"DESK_SECRET": SECRET})
    (problem,) = errors_of(exc)
    assert problem.startswith("accounts[0].ws_url:") and "REST only" in problem and rest in problem
    stream = "wss://stream.example.invalid/v5/private"
    given = one_account(tmp_path, environment=name, ws_url=stream)
    (account,) = load_config(given, env={"DESK_SECRET": SECRET}).accounts
    assert (account.environment, account.rest_url, account.ws_url) == (name, rest, stream)


def test_the_regional_names_are_offered_for_a_wrong_environment(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(one_account(tmp_path, environment="netherlands"), env={"DESK_SECRET": SECRET})
    assert all(name in errors_of(exc)[0] for name in ("nl", "tr", "jp-testnet"))


def test_a_drill_on_a_regional_mainnet_needs_the_mainnet_yes(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(one_account(tmp_path, environment="tr", drill={"every": 86400}), env={"DESK_SECRET": SECRET})
    assert any("refused on mainnet" in e for e in errors_of(exc))
    load_config(
        one_account(tmp_path, environment="tr", drill={"every": 86400, "mainnet": True}), env={"DESK_SECRET": SECRET}
    )


@pytest.mark.parametrize("second", ["https://API.bybit.com/", "https://api.bybit.com:443", "https://api.bybit.com./"])
def test_one_key_twice_on_one_host_is_refused_however_the_host_is_written(tmp_path, second):
    accounts = [
        {"name": "a", "api_key": "key123456", "api_secret_env": "S", "rest_url": "https://api.bybit.com"},
        {"name": "b", "api_key": "key123456", "api_secret_env": "S", "rest_url": second},
    ]
    for account in accounts:
        account["ws_url"] = "wss://stream.bybit.com/v5/private"
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, yaml.safe_dump({"accounts": accounts})), env={"S": SECRET})
    (problem,) = errors_of(exc)
    assert problem.startswith("accounts[1].api_key:") and "same environment" in problem


def test_host_key_normalises_scheme_case_default_port_and_slashes():
    from exporter.config.environment import host_key

    one = {host_key(u) for u in ("https://api.bybit.com", "https://API.bybit.com/", "HTTPS://api.bybit.com:443/v5/")}
    assert one == {"api.bybit.com:443"}
    assert host_key("http://127.0.0.1:8090") != host_key("http://127.0.0.1:8091")
    assert host_key("http://api.bybit.com") != host_key("https://api.bybit.com")  # port 80 is another door
    assert host_key("wss://[::1]:9000/v5/private") == "[::1]:9000"
    assert host_key("not a url") == "not a url"
