"""Hostile variations of Bybit's answers, for the fuzz tests and benchmarks/fuzz_exporter.py.

Each generator takes an ``rng`` and returns text that starts from a real answer and breaks it:
a leaf replaced by a hostile value (NaN, ±Infinity, 1e400, a huge number or string, deep
nesting, a wrong type, control characters), a key dropped, the text cut short or its bytes
flipped.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

HOSTILE_TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e20", "9" * 5000, "-1", "0", "true", "null"]
HOSTILE_VALUES: list[Any] = [
    "",
    "x" * 100_000,
    "\r\x1b[2J\u2028",
    [],
    {},
    [[[[[]]]]],
    True,
    "inf",
    "1675418560633000",
    str(10**30),
    -1,
    2**70,
    1.5,
]


def samples(now_ms: int) -> list[Any]:
    order = {
        "orderId": "o1",
        "category": "linear",
        "orderStatus": "Cancelled",
        "cancelType": "CancelByDCP",
        "updatedTime": str(now_ms),
    }
    return [
        {"op": "pong", "req_id": "x-ping-1", "args": [str(now_ms)], "conn_id": "c"},
        {"topic": "order", "id": "p", "creationTime": now_ms, "data": [order]},
        {"success": True, "ret_msg": "", "op": "auth", "conn_id": "c"},
        {"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "c", "req_id": "s"},
        {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"dcpInfos": [{"product": "SPOT", "dcpStatus": "ON", "timeWindow": "10"}]},
            "time": now_ms,
        },
        {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [order], "nextPageCursor": ""}},
        {"retCode": 0, "retMsg": "OK", "result": {"timeSecond": str(now_ms // 1000), "timeNano": str(now_ms * 10**6)}},
    ]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


_MARK = "\x00HOSTILE\x00"


def mutate(rng: random.Random, now_ms: int | None = None) -> str | bytes:
    """One hostile text (or, now and then, bytes that are not UTF-8) derived from a real answer."""
    base = rng.choice(samples(int(time.time() * 1000) if now_ms is None else now_ms))
    kind = rng.random()
    path = rng.choice(_paths(base)[1:])  # every sample is an object with keys
    if kind < 0.45:  # a leaf becomes a hostile value
        return json.dumps(_replace(base, path, rng.choice(HOSTILE_VALUES)))
    if kind < 0.7:  # a leaf becomes a token Python's json reads but JSON does not have
        return json.dumps(_replace(base, path, _MARK)).replace(json.dumps(_MARK), rng.choice(HOSTILE_TOKENS))
    if kind < 0.8:  # a key dropped
        return json.dumps(_replace(base, path[:-1], _drop(_get(base, path[:-1]), path[-1])))
    if kind < 0.88:  # deep nesting
        depth = rng.choice([100, 1000, 50_000])
        return "[" * depth + "]" * rng.choice([0, depth])
    text = json.dumps(base)
    if kind < 0.94:  # cut short
        return text[: rng.randrange(len(text))]
    raw = bytearray(text.encode())  # bytes flipped, often not UTF-8 any more
    for _ in range(rng.randint(1, 4)):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    return bytes(raw)


def _get(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


def _drop(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        return {k: v for k, v in container.items() if k != key}
    return [v for i, v in enumerate(container) if i != key]
