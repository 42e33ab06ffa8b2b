"""Logging setup: logfmt or JSON lines on stderr, and a filter that masks secrets.

Code logs with ``extra={...}`` fields (``account=...``) and never formats a secret; the
:class:`SecretFilter` is defence in depth: it replaces every configured secret value (and
the middle of every API key) anywhere in a record before any handler formats it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

from .secrets import MASK, is_pem, mask_key

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


# Characters that could forge or hide a line on a terminal or in a log pipeline: C0 and C1
# controls (CR, ESC...), DEL and the Unicode line and paragraph separators. Text from Bybit
# (retMsg, frames) goes into log fields, so every one of them is written as an escape.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_control(match: re.Match[str]) -> str:
    c = match.group()
    return _SHORT_ESCAPES.get(c) or f"\\u{ord(c):04x}"


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(c in text for c in ' ="\\') or _CONTROL.search(text):
        text = _CONTROL.sub(_escape_control, text.replace("\\", "\\\\").replace('"', '\\"'))
        return f'"{text}"'
    return text


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info logger=exporter.x msg="..." account=a ...`` (one line per record)."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, object]] = [
            ("ts", _timestamp(record)),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        pairs += list(record_fields(record).items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            pairs.append(("exc", record.exc_text))
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record_fields(record).items():
            doc[k] = v if isinstance(v, (int, float, bool, type(None))) else str(v)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        # json escapes C0 controls itself; DEL, C1 and the line separators it leaves as they are.
        return _CONTROL.sub(_escape_control, json.dumps(doc, ensure_ascii=False))


class SecretFilter(logging.Filter):
    """Replaces secret values and API keys' middles in a record's message, args, extras and traceback."""

    def __init__(self, secrets: Iterable[str] = (), api_keys: Iterable[str] = ()) -> None:
        super().__init__()
        pairs = {s: MASK for s in secrets if s and len(s) >= 4}
        for key in api_keys:
            if key and len(key) >= 4:
                pairs.setdefault(key, mask_key(key))
        # Longest first so a secret containing a key is masked whole.
        self._replacements: list[tuple[str, str]] = sorted(pairs.items(), key=lambda kv: -len(kv[0]))
        # PEM keys: also mask each body line, in case one is logged line by line.
        for value in list(pairs):
            if is_pem(value):
                for line in value.splitlines():
                    line = line.strip()
                    if len(line) >= 16 and not line.startswith("-----"):
                        self._replacements.append((line, MASK))

    def mask(self, text: str) -> str:
        for value, replacement in self._replacements:
            if value in text:
                text = text.replace(value, replacement)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._replacements:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw template
            message = str(record.msg)
        record.msg = self.mask(message)
        record.args = None
        for key, value in record_fields(record).items():
            if not isinstance(value, (int, float, bool, type(None))):
                setattr(record, key, self.mask(str(value)))
        if record.exc_info:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def setup_logging(
    level: str = "info",
    fmt: str = "logfmt",
    *,
    secrets: Iterable[str] = (),
    api_keys: Iterable[str] = (),
    stream=None,
) -> SecretFilter:
    """Configure the root logger: one stderr handler, the chosen format, the secret filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    secret_filter = SecretFilter(secrets, api_keys)
    handler.addFilter(secret_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Library chatter at DEBUG (frames, headers) is not ours to print.
    for noisy in ("websockets", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    return secret_filter
