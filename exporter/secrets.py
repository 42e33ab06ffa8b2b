"""Credentials: a wrapper that keeps them out of logs, reprs, metrics and tracebacks, key
masking, and telling an RSA key from an HMAC secret.

Anything that formats a :class:`Secret` (``str``, ``repr``, f-strings, logging) gets a
mask; only :meth:`Secret.reveal` returns the value, and only signing code calls it.
"""

from __future__ import annotations

MASK = "***"
PEM_MARKER = "-----BEGIN"


def is_pem(text: str) -> bool:
    """Bybit's RSA API keys are given as a PEM private key; any other secret is an HMAC secret."""
    return PEM_MARKER in text


def mask_key(api_key: str) -> str:
    """An API key with its middle hidden: enough to tell keys apart in a log, not to use one."""
    if len(api_key) <= 6:
        return MASK
    return f"{api_key[:3]}{MASK}{api_key[-2:]}"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str:  # never pickle the value by accident
        raise TypeError("Secret values cannot be pickled")
