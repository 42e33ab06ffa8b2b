"""What the drill hears from the shared Bybit clients: its own observers, recording no metric.

The drill uses the exporter's :class:`~exporter.bybit.stream.PrivateStream` and
:class:`~exporter.bybit.rest.RestClient`; its stream observer keeps what the drill needs (has the
connection come up, or was it refused before it did), and its REST calls are heard by
:class:`~exporter.bybit.observers.RestLog`, which only logs: the command line needs no metrics
registry and a scheduled drill's connections leave the account's series alone.
"""

from __future__ import annotations

import asyncio
import logging

from ..bybit.session import AckTimeout, CallbackFailed, Connected, ConnectionLost, Event, Refused

log = logging.getLogger("exporter.drill")


class DrillStream:
    """One drill connection: :attr:`up` resolves when its subscription is acknowledged, or fails
    with the reason its first connection did not get that far (the drill then reports an error
    instead of retrying into a refusal)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is Connected:
            if not self.up.done():
                self.up.set_result(None)
        elif kind is Refused or kind is AckTimeout or kind is ConnectionLost:
            if not self.up.done():
                self.up.set_exception(ConnectionError(_why(event)))
        elif kind is CallbackFailed:
            assert isinstance(event, CallbackFailed)
            log.error("drill connection callback failed", exc_info=event.error, extra={"connection": self.name})


def _why(event: Event) -> str:
    if isinstance(event, Refused):
        return f"the private stream refused the request: {event.ret_msg[:120]}"
    if isinstance(event, AckTimeout):
        return f"no {event.waiting_for} from the private stream within {event.timeout:g} s"
    assert isinstance(event, ConnectionLost)
    return f"the private stream connection failed: {event.error_type}: {event.error}"[:200]
