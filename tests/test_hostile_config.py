"""One Bybit account, one writer; no configuration error repeats a key in full or any part of a secret."""

from __future__ import annotations

import pytest
import yaml

from exporter.config import ConfigError, load_config
from exporter.simulator.cli import UsageError, load_accounts

KEY = "Xk9TQ2mZpL4vB7nR1w"  # Bybit's keys: 18 letters and digits
SECRET = "p8Rr0qLm2ZtY6cVb9NxW4sKd7HfJ3gUe1AiO"  # and secrets: 36


def errors_of(path, env) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(str(path), env)
    return str(exc.value)


def write(tmp_path, accounts) -> str:
    path = tmp_path / "accounts.yml"
    path.write_text(yaml.safe_dump({"accounts": accounts}))
    return str(path)


def acct(name, **kw):
    return {"name": name, "api_key": KEY, "api_secret_env": "S", **kw}


def test_two_accounts_on_one_key_and_environment_are_refused_naming_both(tmp_path):
    path = write(tmp_path, [acct("desk-a", desired_windows={"SPOT": 10}), acct("desk-b", desired_windows={"SPOT": 20})])
    text = errors_of(path, {"S": SECRET})
    assert "accounts[1].api_key" in text and "'desk-b'" in text and "accounts[0]" in text and "'desk-a'" in text
    assert KEY not in text and "Xk9***1w" in text


def test_the_same_key_on_another_environment_is_another_account(tmp_path):
    path = write(tmp_path, [acct("main"), acct("test", environment="testnet")])
    assert [a.name for a in load_config(path, {"S": SECRET}).accounts] == ["main", "test"]


@pytest.mark.parametrize(
    "account",
    [
        acct("a", api_key=None, api_key_env=KEY),  # the key pasted where its variable's name goes
        acct("a", api_secret_env=SECRET),
        acct("a", mode=SECRET),
        acct("a", environment=SECRET),
        acct("a", rest_url=SECRET, ws_url="wss://x"),
        acct("a", api_secret_env=None, api_secret_file=SECRET),
        acct("a", api_secret_env=None, api_secret_file=f"/run/{SECRET}"),
        {**acct("a"), SECRET: 1},
        acct("a", desired_windows={"SPOT": SECRET}),
        acct("a", guardian_products=[SECRET]),
    ],
)
def test_no_problem_repeats_a_key_or_any_part_of_a_secret(tmp_path, account):
    account = {k: v for k, v in account.items() if v is not None}
    text = errors_of(write(tmp_path, [account]), {"S": SECRET})
    for value in (KEY, SECRET):
        assert not any(value[i : i + 8] in text for i in range(len(value) - 7)), text


def test_the_simulators_yaml_error_shows_where_not_what(tmp_path):
    path = tmp_path / "sim.yml"
    path.write_text(f"- api_key: {KEY}\n  api_secret: {SECRET}\n   dcp: [\n")
    with pytest.raises(UsageError) as exc:
        load_accounts(str(path))
    text = str(exc.value)
    assert "line" in text and SECRET[:8] not in text and KEY not in text


@pytest.mark.parametrize("token", ["two words", "line\r\nX-Injected: 1", "caf\u00e9-token"])
def test_a_liveness_token_no_header_can_carry_is_refused_without_repeating_it(tmp_path, token):
    account = acct(
        "bot",
        mode="guardian",
        guardian_products=["DERIVATIVES"],
        guardian_liveness={"http": {"token_env": "BOT_TOKEN"}, "timeout": 30},
    )
    text = errors_of(write(tmp_path, [account]), {"S": SECRET, "BOT_TOKEN": token})
    assert "accounts[0].guardian_liveness" in text and "Authorization: Bearer" in text
    assert token not in text
