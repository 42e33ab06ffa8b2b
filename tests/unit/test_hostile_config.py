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


# ------------------------------------------------------------------ the files it is pointed at


def secret_account(tmp_path, secret_file) -> str:
    return write(tmp_path, [{"name": "a", "api_key": KEY, "api_secret_file": str(secret_file)}])


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_secret_file_that_is_not_a_regular_file_is_refused_at_once_naming_the_field(tmp_path, kind):
    """A FIFO used to hang the start (and --check-config) until something wrote to it."""
    import os

    target = tmp_path / "secret"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        target = "/dev/zero"  # read whole, it never ends
    text = errors_of(secret_account(tmp_path, target), {})
    assert "accounts[0].api_secret_file" in text and "not a regular file" in text, text


def test_a_huge_secret_file_is_refused_without_reading_it_whole(tmp_path):
    from exporter.config.files import SECRET_FILE_LIMIT

    pem = tmp_path / "key.pem"
    with open(pem, "wb") as fh:
        fh.write(b"-----BEGIN PRIVATE KEY-----\n")
        fh.truncate(70 * 1024 * 1024)  # 70 MB, sparse: nothing of it is read
    path = write(tmp_path, [{"name": "a", "api_key": KEY, "rsa_private_key_file": str(pem)}])
    text = errors_of(path, {})
    assert "accounts[0].rsa_private_key_file" in text and f"larger than {SECRET_FILE_LIMIT} bytes" in text


def test_a_config_file_that_is_a_fifo_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "accounts.yml"
    os.mkfifo(fifo)
    text = errors_of(fifo, {})
    assert "--config.file" in text and "FIFO" in text


@pytest.mark.parametrize(
    ("mode", "warned"), [(0o600, False), (0o400, False), (0o640, False), (0o644, True), (0o604, True)]
)
def test_a_secret_file_others_can_read_is_warned_about_as_ssh_does(tmp_path, mode, warned):
    """Group read is fine for the exporter's own group (Kubernetes: root:<fsGroup> 0440); others' read is not."""
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(mode)
    config = load_config(secret_account(tmp_path, secret), {})
    assert bool(config.warnings) == warned, config.warnings
    if warned:
        assert "accounts[0].api_secret_file" in config.warnings[0] and "every user" in config.warnings[0]
        assert SECRET not in config.warnings[0]


def test_a_symlinked_secret_is_judged_by_its_target(tmp_path):
    """Kubernetes mounts each secret through symlinks (..data/...): the link is normal, its target's mode counts."""
    target = tmp_path / "..data" / "secret"
    target.parent.mkdir()
    target.write_text(SECRET)
    link = tmp_path / "secret"
    link.symlink_to(target)
    target.chmod(0o400)
    assert load_config(secret_account(tmp_path, link), {}).warnings == ()
    target.chmod(0o644)
    assert len(load_config(secret_account(tmp_path, link), {}).warnings) == 1


def test_a_group_readable_secret_of_a_foreign_group_is_warned_about(tmp_path):
    import os

    from exporter.config.files import _readable_by_others

    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o640)
    st = os.stat(secret)
    foreign = os.stat_result((st.st_mode, *st[1:5], 54321, *st[6:]))  # st_gid of a group the exporter is not in
    assert _readable_by_others(foreign) == "group 54321"
    assert _readable_by_others(st) is None


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path):
    """Nine levels of nine aliases: 9**9 values once expanded; it used to end in a MemoryError while an
    error message formatted the expanded value."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    lines.append("accounts: [{name: a, api_key: K, api_secret_env: S, environment: *a9}]")
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join(lines) + "\n")
    text = errors_of(path, {"S": SECRET})
    assert "aliases are expanded" in text and len(text) < 1000


def test_a_smaller_alias_bomb_never_prints_an_error_line_of_hundreds_of_kb(tmp_path):
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, 5):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")  # 6,561 values: allowed
    path = tmp_path / "small-bomb.yml"
    doc = "\n".join(lines) + "\naccounts: [{name: a, api_key: K, api_secret_env: S, environment: *a4}]\n"
    path.write_text(doc)
    text = errors_of(path, {"S": SECRET})
    assert "accounts[0].environment" in text
    assert max(len(line) for line in text.splitlines()) < 600, max(len(line) for line in text.splitlines())


def test_a_duplicate_yaml_key_is_refused_naming_the_key_and_line(tmp_path):
    path = tmp_path / "accounts.yml"
    path.write_text(
        "accounts:\n"
        "  - name: a\n"
        "    api_key: K\n"
        "    api_secret_env: S\n"
        "    desired_windows: {DERIVATIVES: 10}\n"
        "    desired_windows: {DERIVATIVES: 40}\n"
    )
    text = errors_of(path, {"S": SECRET})
    assert "duplicate key 'desired_windows' at line 6 (first at line 5)" in text


def test_yaml_merge_keys_still_override_what_they_merge(tmp_path):
    path = tmp_path / "accounts.yml"
    path.write_text(
        "defaults: &defaults {api_secret_env: S, poll_interval: 30}\n"
        "accounts:\n"
        "  - {<<: *defaults, name: a, api_key: K1, poll_interval: 10}\n"
    )
    with pytest.raises(ConfigError) as exc:  # 'defaults' is no known top-level key: the merge itself is fine
        load_config(str(path), {"S": SECRET})
    assert exc.value.errors == [
        "defaults: unknown top-level key; the file holds 'accounts' (web and log settings are flags)"
    ]


def test_a_malformed_rsa_key_is_refused_by_check_config_naming_the_field(tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
    pem.chmod(0o600)
    path = write(tmp_path, [{"name": "a", "api_key": KEY, "rsa_private_key_file": str(pem)}])
    text = errors_of(path, {})
    assert "accounts[0].rsa_private_key_file" in text and "does not load" in text and "MIIEvQ" not in text


@pytest.mark.parametrize("key", ["AAAA\r\nBBBB", "AAAA BBBB", "AAAA\tBBBB", "AAAA\x00BBBB"])
def test_an_api_key_with_a_control_character_or_space_is_refused_without_echoing_it(key):
    env = {"BYBIT_API_KEY": key, "BYBIT_API_SECRET": SECRET}
    with pytest.raises(ConfigError) as exc:
        load_config(None, env)
    text = str(exc.value)
    assert "BYBIT_API_KEY" in text and "control character" in text and "AAAA" not in text


@pytest.mark.parametrize(
    ("variable", "url"),
    [("BYBIT_REST_URL", "https://api.bybit.com\r\n/x"), ("BYBIT_WS_URL", "wss://stream.bybit.com/v5/\nprivate")],
)
def test_a_url_with_cr_or_lf_is_refused_not_stripped(variable, url):
    env = {
        "BYBIT_API_KEY": KEY,
        "BYBIT_API_SECRET": SECRET,
        "BYBIT_REST_URL": "https://api.bybit.com",
        "BYBIT_WS_URL": "wss://stream.bybit.com/v5/private",
        variable: url,
    }
    with pytest.raises(ConfigError) as exc:
        load_config(None, env)
    assert variable in str(exc.value) and "control character" in str(exc.value)


def test_an_excerpt_of_a_shared_structure_never_expands_it():
    from exporter.config.files import MAX_ECHO, excerpt

    bomb: list = ["lol"]
    for _ in range(9):
        bomb = [bomb] * 9  # 9**9 strings once expanded, nine lists in memory
    text = excerpt(bomb)
    assert text.startswith("[[[[[[[[[['lol'") and len(text) <= MAX_ECHO + 3


def test_a_recursive_yaml_alias_is_refused(tmp_path):
    path = tmp_path / "accounts.yml"
    path.write_text("accounts: &a [*a]\n")
    text = errors_of(path, {})
    assert "recursive alias" in text


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        ("accounts[0].api_secret_file", {"api_secret_file": "/run/secrets/desk\x00a"}),
        (
            "accounts[0].guardian_liveness.file.path",
            {"guardian_liveness": {"file": {"path": "/run/bot\n/alive"}, "timeout": 30}},
        ),
        (
            "accounts[0].guardian_liveness.http.token_file",
            {"guardian_liveness": {"http": {"token_file": "/run/t\x00"}, "timeout": 30}},
        ),
    ],
)
def test_a_path_with_a_control_character_is_refused_naming_the_field(tmp_path, field, spec):
    """A NUL used to raise ValueError out of the loader (a traceback at start)."""
    account = {"name": "a", "api_key": KEY, "api_secret_env": "S", **spec}
    if "api_secret_file" in spec:
        del account["api_secret_env"]
    else:
        account.update(mode="guardian", guardian_products=["DERIVATIVES"])
    text = errors_of(write(tmp_path, [account]), {"S": SECRET})
    assert field in text and "control character" in text, text
