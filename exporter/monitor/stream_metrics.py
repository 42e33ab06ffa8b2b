"""The exporter's ears on a private stream: the stream's events as metrics and log lines.

:class:`~exporter.bybit.stream.PrivateStream` records nothing itself; it hands the events of
its :class:`~exporter.bybit.session.StreamSession` to an observer. :class:`~exporter.bybit.observers.StreamLog` writes
the stream's log lines (the guardian's guarded connection uses it alone: its heartbeat series
would overwrite the observer connection's, which has the same account label);
:class:`StreamMetrics` writes the same lines and the ``bybit_dcp_ws_*`` series.

The dispatch is by the event's exact type, the pong first: it comes once per ping per account.
"""

from __future__ import annotations

import logging

from ..bybit.heartbeat import PongResult
from ..bybit.observers import StreamLog
from ..bybit.session import (
    Connected,
    Disconnected,
    Event,
    InvalidFrame,
    PongTimeout,
    Reconnect,
    Started,
)
from ..metrics import Metrics

log = logging.getLogger("exporter.stream")


class StreamMetrics(StreamLog):
    """The private stream's log lines and its ``bybit_dcp_ws_*`` series for ``account``.

    The label children are looked up once, here: a pong then costs three metric updates."""

    def __init__(self, metrics: Metrics, account: str) -> None:
        super().__init__(account)
        self.metrics = metrics
        self._rtt = metrics.ws_rtt.labels(account)
        self._gap = metrics.ws_heartbeat_gap.labels(account)
        self._last_pong = metrics.ws_last_pong.labels(account)
        self._invalid = metrics.ws_invalid_messages.labels(account)

    def on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is PongResult:
            assert isinstance(event, PongResult)
            if event.rtt is not None:
                self._rtt.observe(event.rtt)
            if event.gap is not None:
                self._gap.observe(event.gap)
            assert event.wall is not None
            self._last_pong.set(event.wall)
            return
        m, account = self.metrics, self.account
        if kind is InvalidFrame:
            self._invalid.inc()
        elif kind is Connected:
            assert isinstance(event, Connected)
            m.ws_connected.labels(account).set(1)
            for product in event.products:
                m.ws_dcp_subscribed.labels(account, product).set(1)
        elif kind is Disconnected:
            assert isinstance(event, Disconnected)
            m.ws_connected.labels(account).set(0)
            for product in event.products:
                m.ws_dcp_subscribed.labels(account, product).set(0)
        elif kind is Reconnect:
            assert isinstance(event, Reconnect)
            m.ws_reconnects.labels(account, event.reason).inc()
        elif kind is PongTimeout:
            m.ws_pong_timeouts.labels(account).inc()
        elif kind is Started:
            assert isinstance(event, Started)
            m.ping_gap.set_source(account, event.last_pong_or_start)
        super().on_event(event)
