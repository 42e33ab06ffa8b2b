"""The rules that relate an account's settings to each other, run after each setting was checked on its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..secrets import Secret, is_pem
from .checks import API_KEY_MISSING, SETTLE_RANGE, SHORT_SETTLE_RANGE, Report, api_key_text_problem, reporter
from .environment import is_mainnet
from .files import FileProblem, read_secret_file
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

    def field(self, name: str) -> str:
        """The setting as the source spells it: ``ws_url`` in a YAML account, ``BYBIT_WS_URL`` in the quick start."""
        return self.path(name).rpartition(".")[2]

    def setting_text(self, name: str, value: str) -> str:
        """How to write the setting in the source: ``environment: testnet`` or ``BYBIT_ENV=testnet``."""
        field = self.field(name)
        return f"{field}={value}" if field != name else f"{field}: {value}"


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
    problem = api_key_text_problem(key)
    if problem:
        checked.report("api_key_env", f"the key it holds {problem}")
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
        problem = rsa_key_problem(value) if is_pem(value) else None
        if problem:
            checked.report("api_secret_env", problem)
            return None
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
    # A bare word (no '/' or '.') may be a secret pasted by mistake: do not repeat it.
    shown = repr(file_path) if ("/" in file_path or "." in file_path) else "the file (name not shown)"
    try:
        value = read_secret_file(file_path, checked.path(reference)).strip()
    except OSError as exc:
        checked.report(reference, f"cannot read {shown}: {exc.strerror or type(exc).__name__}; give a file path")
        return None
    except FileProblem as exc:
        checked.report(reference, f"{shown} {exc}; give a file holding only the secret")
        return None
    if not value:
        checked.report(reference, f"{shown} is empty")
        return None
    if reference == "rsa_private_key_file" and not is_pem(value):
        checked.report(reference, f"{shown} is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)")
        return None
    if is_pem(value):
        problem = rsa_key_problem(value)
        if problem:
            checked.report(reference, f"{shown}: {problem}")
            return None
    return Secret(value)


def rsa_key_problem(pem: str) -> str | None:
    """Why a PEM text is no RSA private key the signer can use (None: it is one). Never quotes the key."""
    # Loaded only for a PEM key, as the signer does: cryptography costs 8 MB of resident memory.
    from cryptography.exceptions import UnsupportedAlgorithm  # (the same reason)
    from cryptography.hazmat.primitives import serialization  # (the same reason)
    from cryptography.hazmat.primitives.asymmetric import rsa  # (the same reason)

    try:
        # Parsed, not verified: verifying a 4096-bit key's arithmetic takes about 0.25 s, which a
        # thousand accounts would spend at every start; the signer verifies it on first use.
        key = serialization.load_pem_private_key(pem.encode(), password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        return "the private key is encrypted; give it without a passphrase (the exporter cannot prompt for one)"
    except (ValueError, UnsupportedAlgorithm):
        return "the PEM private key does not load (damaged, truncated, or not a private key)"
    if not isinstance(key, rsa.RSAPrivateKey):
        return "the PEM private key is not an RSA key (Bybit's self-generated keys are RSA)"
    return None


def resolve_endpoints(checked: Checked) -> tuple[str, str, str] | None:
    """(environment, rest_url, ws_url): Bybit's URLs for the environment (mainnet unless set), either
    of which rest_url or ws_url replaces on its own (a regional REST host beside Bybit's global
    stream, a proxy in front of one of them); both URLs without an environment make a custom endpoint.

    One URL on its own sends the credentials only to Bybit and to the host it names, so it is not
    refused. What is refused is a URL that is another Bybit environment's beside this environment's
    other URL: the key of one environment would be sent to the other's host, which refuses it.
    """
    if any(checked.failed(name) for name in ("environment", "rest_url", "ws_url")):
        return None
    values = checked.values
    urls_given = [name for name in ("rest_url", "ws_url") if name in checked.given]
    if "environment" not in checked.given and len(urls_given) == 2:
        return CUSTOM_ENVIRONMENT, values["rest_url"], values["ws_url"]
    environment = values["environment"]
    default_rest, default_ws = ENVIRONMENTS[environment]
    if len(urls_given) == 1:
        (name,) = urls_given
        other = next((env for env, urls in ENVIRONMENTS.items() if _same_url(values[name], urls)), None)
        if other is not None and other != environment:
            other_url = checked.field("ws_url" if name == "rest_url" else "rest_url")
            checked.report(
                name,
                f"is {other}'s URL while {other_url} stays {environment}'s: the API key of one environment "
                f"would be sent to the other's host, which refuses it; set {checked.setting_text('environment', other)} "
                f"(or give {other_url} too)",
            )
            return None
    return environment, values["rest_url"] or default_rest, values["ws_url"] or default_ws


def _same_url(url: str, environment_urls: tuple[str, str]) -> bool:
    return url.rstrip("/").lower() in (u.lower() for u in environment_urls)


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
            token = read_secret_file(str(liveness.token_file), checked.path("guardian_liveness.http.token_file"))
            token = token.strip()
        except OSError as exc:
            checked.report("guardian_liveness", f"http.token_file: cannot read {liveness.token_file!r}: {exc.strerror}")
            return None
        except FileProblem as exc:
            checked.report("guardian_liveness", f"http.token_file: {liveness.token_file!r} {exc}")
            return None
        if not token:
            checked.report("guardian_liveness", f"http.token_file: {liveness.token_file!r} is empty")
            return None
    if not sendable_bearer_token(token):
        checked.report(
            "guardian_liveness",
            "http: the token must be printable ASCII without spaces (it travels in an "
            "'Authorization: Bearer' header, which cannot carry anything else); the bot could never send it",
        )
        return None
    return dataclasses.replace(liveness, token=Secret(token))


def sendable_bearer_token(token: str) -> bool:
    """A token an HTTP header can carry as written: visible ASCII, no spaces or control characters."""
    return all("!" <= ch <= "~" for ch in token)


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
