"""Reading ``BYBIT_*`` text into the value a YAML file would give, for the same checks to judge."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeAlias

from .checks import Report

# (the variable's non-empty text, the variable's name, report) -> the setting's value as YAML would
# give it, for the setting's check to judge; None after reporting why the text cannot be read.
EnvReader: TypeAlias = Callable[[str, str, Report], Any]


def read_verbatim(text: str, variable: str, report: Report) -> str:
    """Names, keys and paths are taken as written: a stray space is reported, not silently dropped."""
    return text


def read_stripped(text: str, variable: str, report: Report) -> str:
    """Choice words and URLs, where surrounding spaces from a shell or .env file are noise."""
    return text.strip()


def read_seconds(text: str, variable: str, report: Report) -> float | None:
    try:
        return float(text)
    except ValueError:
        report(f"{text!r} is not a number of seconds")
        return None


def read_comma_list(text: str, variable: str, report: Report) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def read_product_seconds(text: str, variable: str, report: Report) -> dict[str, Any]:
    """``DERIVATIVES=10,SPOT=10``; whole numbers become ints so the window check judges them as in YAML."""
    windows: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        product, sep, value = item.partition("=")
        value = value.strip()
        if not sep:
            report(f"{item.strip()!r} is not PRODUCT=SECONDS (e.g. DERIVATIVES=10,SPOT=10)")
            continue
        windows[product.strip()] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return windows


def read_this_variable(text: str, variable: str, report: Report) -> str:
    """The variable holds the secret itself, so the setting (a variable's name) names this variable."""
    return variable
