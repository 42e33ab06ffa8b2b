"""Checks of one setting's value, each reporting what is wrong and returning the converted value."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from ..dcp import MAX_WINDOW, MIN_SETTLE_SECONDS, MIN_WINDOW, PRODUCTS, REASSERT_POLICIES, valid_window
from .files import excerpt
from .model import ENV_NAME_RE, ENVIRONMENTS, MODES, NAME_RE, DrillSettings, GuardianLiveness


class Report(Protocol):
    """Where a check or an environment reader puts a problem; ``at`` narrows the path to one entry."""

    def __call__(self, problem: str, *, at: object = None) -> None: ...


# A setting's value as given (never None: a null value counts as not given) -> its checked,
# converted value; None after reporting why it cannot be used. Collections keep their valid part.
Check: TypeAlias = Callable[[Any, Report], Any]

API_KEY_MISSING = "missing; give the account's API key (or api_key_env)"


def check_account_name(value: Any, report: Report) -> str | None:
    """The name labels every metric, so it must be short and label-safe; required, so None is "missing"."""
    if isinstance(value, str) and NAME_RE.match(value):
        return value
    report(
        f"{'missing' if value is None else repr(value)}; give a name of letters, digits, '_', '.' or '-' "
        "(up to 63 characters, starting with a letter or digit): it labels every metric"
    )
    return None


def check_api_key_text(value: Any, report: Report) -> str | None:
    """The key as text: YAML reads an all-digit key as a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        problem = api_key_text_problem(value.strip())
        if problem:
            report(problem)
            return None
        return value.strip()
    report(API_KEY_MISSING)
    return None


def api_key_text_problem(key: str) -> str | None:
    """The key travels in a header (``X-BAPI-API-KEY``): a control character or a space would break every request."""
    if all("!" <= ch <= "~" for ch in key):
        return None
    return (
        "contains a space, a control character (such as CR or LF) or a non-ASCII character; "
        "Bybit's keys are letters and digits (key not shown)"
    )


def url_text_problem(value: str) -> str | None:
    """A URL with a control character or a space is refused, never silently stripped by the HTTP library."""
    if any(ch <= " " or ch == "\x7f" for ch in value):
        return "contains a space or a control character (such as CR or LF); write the URL on one line"
    return None


@dataclass(frozen=True)
class VariableName:
    """The name of an environment variable; what it holds is read by the rule that needs it."""

    problem: str

    def __call__(self, value: Any, report: Report) -> str | None:
        if isinstance(value, str) and ENV_NAME_RE.match(value):
            return value
        report(self.problem)
        return None


def check_file_path(value: Any, report: Report) -> str | None:
    if isinstance(value, str) and value:
        problem = path_text_problem(value)
        if problem:
            report(problem)
            return None
        return value
    report("must be a file path")
    return None


def path_text_problem(path: str) -> str | None:
    """A path with a control character (a NUL from a YAML escape, a pasted newline) is a mistake, not a file."""
    if any(ch < " " or ch == "\x7f" for ch in path):
        return "contains a control character (such as NUL, CR or LF); give the file's path on one line"
    return None


def check_environment(value: Any, report: Report) -> str | None:
    if isinstance(value, str) and value in ENVIRONMENTS:
        return value
    report(f"{value!r} is not one of {', '.join(ENVIRONMENTS)}; for another host set rest_url and ws_url")
    return None


def check_rest_url(value: Any, report: Report) -> str | None:
    """Without a trailing '/', so request paths can be appended as they are."""
    if isinstance(value, str) and url_text_problem(value):
        report(f"{_excerpt(value)} {url_text_problem(value)}")
        return None
    if isinstance(value, str) and re.match(r"^https?://[^\s/]+", value):
        return value.rstrip("/")
    report(f"{_excerpt(value)} is not an http(s) URL like https://api.bybit.com")
    return None


def check_ws_url(value: Any, report: Report) -> str | None:
    if isinstance(value, str) and url_text_problem(value):
        report(f"{_excerpt(value)} {url_text_problem(value)}")
        return None
    if isinstance(value, str) and re.match(r"^wss?://[^\s/]+", value):
        return value
    report(f"{_excerpt(value)} is not a ws(s) URL like wss://stream.bybit.com/v5/private")
    return None


def check_mode(value: Any, report: Report) -> str | None:
    if value in MODES:
        return str(value)
    report(f"{value!r} is not 'observer' (default, safe) or 'guardian'")
    return None


def check_products(value: Any, report: Report) -> tuple[str, ...]:
    """DCP products, each once; a single product may be written without a list."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        report(f"must be a list of products ({', '.join(PRODUCTS)})")
        return ()
    products: list[str] = []
    for item in value:
        if item not in PRODUCTS:
            report(f"{item!r} is not one of {', '.join(PRODUCTS)}")
        elif item not in products:
            products.append(item)
    return tuple(products)


def check_desired_windows(value: Any, report: Report) -> dict[str, int]:
    """Product -> window; each entry is judged (and named in its problem) on its own."""
    if not isinstance(value, dict):
        report("must map products to seconds, e.g. {DERIVATIVES: 10, SPOT: 10}")
        return {}
    windows: dict[str, int] = {}
    for product, window in value.items():
        if product not in PRODUCTS:
            report(f"unknown product; use {', '.join(PRODUCTS)}", at=product)
        elif not valid_window(window):
            report(
                f"{window!r} must be a whole number of seconds in [{MIN_WINDOW}, {MAX_WINDOW}] (Bybit's range)",
                at=product,
            )
        else:
            windows[product] = window
    return windows


def check_reassert_policy(value: Any, report: Report) -> str | None:
    if value is False:  # YAML 1.1 reads a bare `off` as false
        return "off"
    if value in REASSERT_POLICIES:
        return str(value)
    report(f"{value!r} is not one of {', '.join(REASSERT_POLICIES)}")
    return None


def check_true_or_false(value: Any, report: Report) -> bool | None:
    if isinstance(value, bool):
        return value
    report("must be true or false")
    return None


def finite_number(value: Any) -> float | None:
    """An int or float as a finite float; None for a bool, another type, NaN, ±Inf or an int too big for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def check_number_of_seconds(value: Any, report: Report) -> float | None:
    number = finite_number(value)
    if number is None:
        report(f"{_excerpt(value)} is not a number of seconds")
    return number


def _excerpt(value: Any, limit: int = 60) -> str:
    return excerpt(value, limit)


@dataclass(frozen=True)
class Seconds:
    """A duration: ``low < value <= high`` (``low <= value`` when inclusive); ``why`` explains the bounds."""

    low: float
    high: float
    inclusive: bool = False
    why: str = ""

    def __call__(self, value: Any, report: Report) -> float | None:
        seconds = check_number_of_seconds(value, report)
        if seconds is None:
            return None
        too_low = seconds < self.low if self.inclusive else seconds <= self.low
        if too_low or seconds > self.high:
            bound = f"at least {self.low:g}" if self.inclusive else f"more than {self.low:g}"
            report(f"{seconds:g} must be {bound} and at most {self.high:g} seconds{self.why}")
            return None
        return seconds


LIVENESS_SOURCES = ("http", "file", "prometheus")
DRILL_SIDES = ("Buy", "Sell")
DRILL_CUTS = ("abort", "silence")
_LIVENESS_TIMEOUT = Seconds(0.0, 3600.0)


def check_guardian_liveness(value: Any, report: Report) -> GuardianLiveness | None:
    """Exactly one source and a timeout; an http token is read by a rule (it needs the environment)."""
    if not isinstance(value, dict):
        report("must be a mapping with one source (http, file or prometheus) and a timeout")
        return None
    counted = _Counted(report)
    for key in value:
        if key not in (*LIVENESS_SOURCES, "timeout"):
            counted(f"unknown key; use one of {', '.join(LIVENESS_SOURCES)} and timeout", at=key)
    sources = [key for key in LIVENESS_SOURCES if key in value]
    if len(sources) != 1:
        counted(f"give exactly one source of {', '.join(LIVENESS_SOURCES)}; found {len(sources)}")
    timeout = _LIVENESS_TIMEOUT(value.get("timeout"), _at(counted, "timeout")) if "timeout" in value else None
    if "timeout" not in value:
        counted("missing; seconds without a sign of life counted the guardian lets go", at="timeout")
    if counted.count or timeout is None:
        return None
    (source,) = sources
    spec = value[source]
    where = _at(counted, source)
    fields = _LIVENESS_FIELDS[source]
    if (
        not isinstance(spec, dict)
        or set(spec) - set(fields.optional + fields.required)
        or not set(fields.required) <= set(spec)
    ):
        where(fields.usage)
        return None
    for key in ("path", "token_file"):
        if isinstance(spec.get(key), str) and path_text_problem(spec[key]):
            where(str(path_text_problem(spec[key])), at=key)
            return None
    if source == "http":
        refs = [k for k in ("token_env", "token_file") if k in spec]
        if len(refs) != 1 or not all(isinstance(spec[k], str) and spec[k] for k in refs):
            where(fields.usage)
            return None
        if "token_env" in refs and not ENV_NAME_RE.match(spec["token_env"]):
            where("token_env must be the name of an environment variable, not the token itself", at="token_env")
            return None
        return GuardianLiveness("http", timeout, token_env=spec.get("token_env"), token_file=spec.get("token_file"))
    if not all(isinstance(spec[k], str) and spec[k] for k in spec):
        where(fields.usage)
        return None
    if source == "file":
        return GuardianLiveness("file", timeout, path=spec["path"])
    if url_text_problem(spec["url"]):
        where(f"{_excerpt(spec['url'])} {url_text_problem(spec['url'])}", at="url")
        return None
    if not re.match(r"^https?://[^\s/]+", spec["url"]):
        where(f"{spec['url']!r} is not an http(s) URL like http://prometheus:9090", at="url")
        return None
    return GuardianLiveness("prometheus", timeout, url=spec["url"].rstrip("/"), query=spec["query"])


@dataclass(frozen=True)
class _SourceFields:
    required: tuple[str, ...]
    optional: tuple[str, ...]
    usage: str


_LIVENESS_FIELDS = {
    "http": _SourceFields(
        (), ("token_env", "token_file"), "give exactly one of token_env or token_file: {token_env: BOT_TOKEN}"
    ),
    "file": _SourceFields(("path",), (), "give the file the bot touches: {path: /run/bot/alive}"),
    "prometheus": _SourceFields(
        ("url", "query"), (), "give url and query: {url: http://prometheus:9090, query: 'up{job=\"bot\"} == 1'}"
    ),
}


class _Counted:
    """A report that counts what it reported, for a check that goes on only while nothing is wrong."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self.count = 0

    def __call__(self, problem: str, *, at: object = None) -> None:
        self.count += 1
        self._report(problem, at=at)


def _at(report: Report, key: str) -> Report:
    """``report`` narrowed to ``key``: problems name ``<setting>.<key>[.<at>]``."""

    def narrowed(problem: str, *, at: object = None) -> None:
        report(problem, at=key if at is None else f"{key}.{at}")

    return narrowed


_DRILL_KEYS = {f.name for f in dataclasses.fields(DrillSettings)}


def check_drill(value: Any, report: Report) -> DrillSettings | None:
    """A scheduled drill: ``every`` is required here (the command line runs one drill without it)."""
    if not isinstance(value, dict):
        report("must be a mapping, e.g. {every: 86400, product: DERIVATIVES, symbol: BTCUSDT}")
        return None
    counted = _Counted(report)
    for key in value:
        if key not in _DRILL_KEYS:
            counted(f"unknown key{did_you_mean(str(key), sorted(_DRILL_KEYS))}", at=key)
    if "every" not in value:
        counted("missing; seconds between drills (e.g. 86400: once a day)", at="every")
    settings = drill_settings(value, counted)
    return None if counted.count or settings is None else settings


def drill_settings(value: Mapping[str, Any], report: Report) -> DrillSettings | None:
    """Check the drill's values (from YAML or the drill's flags); None after reporting a problem."""
    counted = _Counted(report)
    checks: dict[str, Callable[[Any, Report], Any]] = {
        "product": lambda v, r: v if v in PRODUCTS else r(f"{v!r} is not one of {', '.join(PRODUCTS)}"),
        "symbol": lambda v, r: (
            v
            if isinstance(v, str) and re.fullmatch(r"[A-Z0-9-]{2,40}", v)
            else r(f"{v!r} is not a symbol like BTCUSDT")
        ),
        "side": lambda v, r: v if v in DRILL_SIDES else r(f"{v!r} is not Buy or Sell"),
        "qty": lambda v, r: str(v) if _positive_number(v) else r(f"{v!r} is not a positive quantity"),
        "price_offset": lambda v, r: (
            float(v)
            if _number(v) and 0 < v < 1
            else r(f"{v!r} must be a fraction of the last price in (0, 1), e.g. 0.5")
        ),
        "tolerance": Seconds(0.0, 3600.0, inclusive=True),
        "cut": lambda v, r: v if v in DRILL_CUTS else r(f"{v!r} is not one of {', '.join(DRILL_CUTS)}"),
        "allow_other_orders": check_true_or_false,
        "mainnet": check_true_or_false,
        "every": Seconds(0.0, 30 * 86400.0),
    }
    values: dict[str, Any] = {}
    for key, check in checks.items():
        if key in value and value[key] is not None:
            values[key] = check(value[key], _at(counted, key))
    if counted.count:
        return None
    return DrillSettings(**values)


def _number(value: Any) -> bool:
    return finite_number(value) is not None


def _positive_number(value: Any) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


_SETTLE_WHY = f" (Bybit asks to wait {MIN_SETTLE_SECONDS:g} s before checking a new setting)"
# settle_seconds' range depends on allow_short_settle, so it is applied by a rule after the per-setting pass.
SETTLE_RANGE = Seconds(MIN_SETTLE_SECONDS, 3600.0, inclusive=True, why=_SETTLE_WHY)
SHORT_SETTLE_RANGE = Seconds(0.0, 3600.0, why=_SETTLE_WHY)


def reporter(where: str, errors: list[str]) -> Report:
    def report(problem: str, *, at: object = None) -> None:
        errors.append(f"{where}{'' if at is None else f'.{at}'}: {problem}")

    return report


def did_you_mean(key: str, options: Iterable[str]) -> str:
    names = list(options)
    close = difflib.get_close_matches(key, names, n=1)
    return f"; did you mean {close[0]}?" if close else f"; known settings: {', '.join(names)}"
