"""Sharding: which accounts one replica watches when a desk outgrows one process (pure).

Every replica reads the same configuration and keeps the accounts whose stable hash of
the account name falls in its shard. SHA-256, not Python's ``hash()``: that one is salted
per process, and replicas must agree without talking to each other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
ORDINAL = re.compile(r"-(\d+)$")  # a StatefulSet pod is named <statefulset>-<ordinal>


@dataclass(frozen=True)
class Shard:
    """This replica's place among ``count`` replicas."""

    index: int = 0
    count: int = 1

    def describe(self) -> str:
        return f" in shard {self.index} of {self.count}" if self.count > 1 else ""


ONE_SHARD = Shard()


def shard_of(name: str, count: int) -> int:
    """The shard, in [0, count), that owns the account ``name``."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select(accounts: Sequence[T], names: Sequence[str], index: int, count: int) -> list[T]:
    """The accounts (``names[i]`` naming ``accounts[i]``) that belong to shard ``index`` of ``count``."""
    return [account for account, name in zip(accounts, names, strict=True) if shard_of(name, count) == index]


def ordinal_from_hostname(hostname: str) -> int | None:
    """The pod ordinal of a StatefulSet host name (``bybit-dcp-exporter-2`` -> 2), else None."""
    match = ORDINAL.search(hostname.split(".", 1)[0])
    return int(match.group(1)) if match else None


def resolve_index(index: int | None, count: int, hostname: str) -> int:
    """The shard index from the flag, or from the host name; raises ValueError naming the fix."""
    if count < 1:
        raise ValueError(f"--shard.count: {count} must be at least 1")
    if index is None:
        if count == 1:
            return 0
        index = ordinal_from_hostname(hostname)
        if index is None:
            raise ValueError(
                f"--shard.index: not given and the host name {hostname!r} does not end in a StatefulSet "
                "ordinal (-0, -1, ...); pass --shard.index"
            )
    if not 0 <= index < count:
        raise ValueError(f"--shard.index: {index} must be in [0, {count - 1}] for --shard.count {count}")
    return index
