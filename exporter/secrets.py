"""A wrapper that keeps credentials out of logs, reprs, metrics and tracebacks.

Anything that formats a :class:`Secret` (``str``, ``repr``, f-strings, logging) gets a
mask; only :meth:`Secret.reveal` returns the value, and only signing code calls it.
"""

from __future__ import annotations

MASK = "***"


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

    def __reduce__(self):  # never pickle the value by accident
        raise TypeError("Secret values cannot be pickled")
