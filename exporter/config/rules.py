"""The rules that relate an account's settings to each other, run after each setting was checked on its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..secrets import Secret, is_pem
from .checks import API_KEY_MISSING, SETTLE_RANGE, SHORT_SETTLE_RANGE, Report, reporter
from .environment import is_mainnet
from .model import (
    CONVENTIONAL_ENV_NAME_RE,
    CUSTOM_ENVIRONMENT,
    ENVIRONMENTS,
    INLINE_SECRET_FIELDS,
    SECRET_REFERENCES,
    DrillSettings,
    GuardianLiveness,
)


@dataclass(frozen=True)
class Checked:
    """One account after the per-setting pass, for the rules that relate settings to each other."""

    values: dict[str, Any]  # each setting: its checked value, its default when not given, None if its check failed
    given: frozenset[Any]  # the keys the account sets (to a value other than null)
    path: Callable[[str], str]
    errors: list[str]

    def reporter(self, name: str) -> Report:
        return reporter(self.path(name), self.errors)

    def report(self, name: str, problem: str) -> None:
        self.reporter(name)(problem)

    def failed(self, name: str) -> bool:
        return name in self.given and self.values[name] is None


def resolve_api_key(checked: Checked, env: Mapping[str, str]) -> str | None:
    """Exactly one of api_key and api_key_env (the name of a variable holding the key)."""
    if "api_key" in checked.given and "api_key_env" in checked.given:
        checked.report("api_key_env", "set either api_key or api_key_env, not both")
        return None
    if "api_key_env" not in checked.given:
        if "api_key" not in checked.given:
            checked.report("api_key", API_KEY_MISSING)
        return checked.values["api_key"]
    variable = checked.values["api_key_env"]
    if variable is None:
        return None
    key = env.get(variable, "").strip()
    if not key:
        shown = variable if CONVENTIONAL_ENV_NAME_RE.match(variable) else "it names (not shown: it may be the key)"
        checked.report("api_key_env", f"the environment variable {shown} is not set or empty; export it")
        return None
    return key


def resolve_api_secret(checked: Checked, env: Mapping[str, str]) -> Secret | None:
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


def _secret_from_variable(checked: Checked, variable: str, env: Mapping[str, str]) -> Secret | None:
    value = env.get(variable, "").strip()
    if value:
        return Secret(value)
    if CONVENTIONAL_ENV_NAME_RE.match(variable):
        checked.report("api_secret_env", f"environment variable {variable} is not set or empty; export it")
    else:  # possibly the secret itself pasted here: do not repeat it
        checked.report(
            "api_secret_env",
            "the environment variable it names is not set (name not shown, in case it is the secret itself); "
            "give the NAME of a variable, e.g. DESK_A_SECRET, and export it",
        )
    return None


def _secret_from_file(checked: Checked, reference: str, file_path: str) -> Secret | None:
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


def resolve_endpoints(checked: Checked) -> tuple[str, str, str] | None:
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


def guardian_products_match_mode(checked: Checked) -> None:
    """A guardian subscribes the dcp.* topics of its products, so needs some; any other mode subscribes none."""
    mode, products = checked.values["mode"], checked.values["guardian_products"]
    if mode == "guardian" and not products:
        checked.report("guardian_products", "guardian mode needs the products to protect, e.g. [DERIVATIVES]")
    elif mode != "guardian" and products:  # an invalid mode counts as the safe observer
        checked.report(
            "guardian_products",
            "only used in guardian mode; set mode: guardian or remove it (an observer never subscribes dcp.*)",
        )


def pong_before_next_ping(checked: Checked) -> None:
    """A pong that may arrive after the next ping cannot tell which ping it answers."""
    ping, pong = checked.values["ping_interval"], checked.values["pong_timeout"]
    if ping is not None and pong is not None and pong >= ping:
        checked.report("pong_timeout", f"{pong:g} s must be shorter than ping_interval ({ping:g} s)")


def enforce_needs_desired_windows(checked: Checked) -> None:
    """Enforcing puts the desired windows back, so there must be some."""
    if checked.values["reassert"] == "enforce" and not checked.values["desired_windows"]:
        checked.report("reassert", "enforce needs desired_windows (e.g. DERIVATIVES: 10); set them or use dry-run/off")


def settle_seconds_in_range(checked: Checked) -> float | None:
    """At least Bybit's 10 s, unless allow_short_settle opts in (tests and drills against the simulator)."""
    settle_seconds = checked.values["settle_seconds"]
    if settle_seconds is None:
        return None
    settle_range = SHORT_SETTLE_RANGE if checked.values["allow_short_settle"] else SETTLE_RANGE
    return settle_range(settle_seconds, checked.reporter("settle_seconds"))


def liveness_needs_guardian_and_its_token(checked: Checked, env: Mapping[str, str]) -> GuardianLiveness | None:
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


def drill_only_for_an_observer(checked: Checked, endpoints: tuple[str, str, str] | None) -> None:
    """A guardian holds a dcp.* connection, so DCP could never fire during its drill; mainnet needs a yes."""
    drill: DrillSettings | None = checked.values["drill"]
    if drill is None:
        return
    if checked.values["mode"] != "observer":
        checked.report("drill", "only for an observer: a guardian's own dcp.* connection keeps DCP from firing")
    if endpoints is not None and is_mainnet(endpoints[0]) and not drill.mainnet:
        checked.report(
            "drill",
            "refused on mainnet: DCP cancels every active order of the product; use a testnet sub-account, "
            "or set mainnet: true for a dedicated mainnet sub-account",
        )
