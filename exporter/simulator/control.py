"""The fault-injection control surface under ``/__sim__``, for drills and other processes.

``POST /__sim__/<name>`` with a JSON object of keyword arguments calls the control of that
name; ``GET /__sim__/state`` returns :meth:`Simulator.state`. It has no authentication, which
is why the simulator listens on loopback only. :func:`controls` is the one list of what can be
called: it dispatches, and it answers a 404 with the names and what they do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .routes import json_response

if TYPE_CHECKING:  # server.py mounts this module; the type is only needed for annotations
    from .server import Simulator

CONTROL_PREFIX = "/__sim__"


@dataclass(frozen=True)
class Control:
    call: Callable[..., Any]
    description: str


def controls(sim: Simulator) -> dict[str, Control]:
    """Every control, by the name it has in the URL."""
    return {
        "set_pong_latency": Control(sim.set_pong_latency, "pongs go `seconds` late (0 = on time)"),
        "drop_pongs": Control(sim.drop_pongs, "pings are heartbeats but get no pong"),
        "stall": Control(sim.stall, "the account's live connections go silent but stay open"),
        "close_connections": Control(sim.close_connections, "close the account's connections with `code`"),
        "refuse_streams": Control(sim.refuse_streams, "close the account's connections and refuse its auth"),
        "abort_connections": Control(
            sim.abort_connections, "drop the account's connections without a close frame (the client sees 1006)"
        ),
        "streams_unreachable": Control(
            sim.streams_unreachable, "drop every connection and answer handshakes 503 (`unreachable`)"
        ),
        "refuse_subscribe": Control(sim.refuse_subscribe, "answer the account's subscribes `success: false` (`on`)"),
        "set_rate_limit": Control(sim.set_rate_limit, "each key may call `path` `per_second` times a second"),
        "force_error": Control(sim.force_error, "the next `count` requests to `path` fail with `ret_code`"),
        "force_response": Control(
            sim.force_response, "the next `count` requests to `path` get `status`, `body`, `headers` after `delay` s"
        ),
        "clear_errors": Control(sim.clear_errors, "remove every forced error and forced answer"),
        "send_malformed": Control(sim.send_malformed, "send `text` as a raw frame to the account's connections"),
        "set_dcp": Control(sim.set_dcp, "change a DCP window behind the clients' back (null = off)"),
        "set_key": Control(
            sim.set_key, "what query-api reports for the key: `read_only`, `permissions`, `ips`, `expired_at`"
        ),
        "set_account_mode": Control(
            sim.set_account_mode, "the `unified_margin_status` account/info reports (1, 3, 4, 5, 6)"
        ),
        "reset_faults": Control(sim.reset_faults, "clear latency, dropped pongs, refusals, stalls and forced errors"),
        "place_order": Control(sim.place_order, "place a resting limit order"),
    }


class ControlSurface:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._controls = controls(sim)

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get(CONTROL_PREFIX + "/state", self._state)
        router.add_post(CONTROL_PREFIX + "/{name}", self._call)

    async def _state(self, request: web.Request) -> web.Response:
        return json_response(self._sim.state())

    async def _call(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        control = self._controls.get(name)
        if control is None:
            return json_response(
                {
                    "ok": False,
                    "error": f"unknown control {name!r}",
                    "controls": list(self._controls),
                    "descriptions": {n: c.description for n, c in self._controls.items()},
                },
                status=404,
            )
        try:
            raw = await request.text()
            kwargs = json.loads(raw) if raw.strip() else {}
            if not isinstance(kwargs, dict):
                raise ValueError("the body must be a JSON object of keyword arguments")
            result = control.call(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            return json_response({"ok": False, "error": str(exc)}, status=400)
        return json_response({"ok": True, "result": result})
