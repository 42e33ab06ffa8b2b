"""The exporter's ears on a private stream: the stream's events as metrics and log lines.

:class:`~exporter.bybit.stream.PrivateStream` records nothing itself; it hands the events of
its :class:`~exporter.bybit.session.StreamSession` to an observer. :class:`StreamLog` writes
the stream's log lines (the guardian's guarded connection uses it alone: its heartbeat series
would overwrite the observer connection's, which has the same account label);
:class:`StreamMetrics` writes the same lines and the ``bybit_dcp_ws_*`` series.

The dispatch is by the event's exact type, the pong first: it comes once per ping per account.
"""

from __future__ import annotations

import logging

from ..bybit.heartbeat import PongResult
from ..bybit.session import (
    AckTimeout,
    BudgetWait,
    CallbackFailed,
    Connected,
    ConnectionLost,
    Disconnected,
    Event,
    InvalidFrame,
    PongTimeout,
    Reconnect,
    Refused,
    Started,
)
from ..metrics import Metrics

log = logging.getLogger("exporter.stream")

_FAILED = {
    "on_orders": "on_orders callback failed",
    "on_reconnected": "on_reconnected callback failed",
    "heartbeat": "heartbeat failed unexpectedly",
}


class StreamLog:
    """The private stream's log lines for ``account``; records no metric."""

    def __init__(self, account: str) -> None:
        self.account = account

    def on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is PongResult or kind is Disconnected or kind is Started:
            return
        account = self.account
        if kind is InvalidFrame:
            assert isinstance(event, InvalidFrame)
            if event.first:
                log.warning(
                    "skipped a websocket frame it could not understand (further frames of this kind are only counted)",
                    extra={"account": account, "kind": event.kind, "detail": event.detail},
                )
        elif kind is Connected:
            assert isinstance(event, Connected)
            log.info("private stream up", extra={"account": account, "topics": ",".join(event.topics)})
        elif kind is Reconnect:
            assert isinstance(event, Reconnect)
            log.info(
                "private stream reconnecting",
                extra={"account": account, "reason": event.reason, "delay_seconds": round(event.delay, 3)},
            )
        elif kind is PongTimeout:
            assert isinstance(event, PongTimeout)
            log.warning(
                "no pong in time; reconnecting",
                extra={"account": account, "pong_timeout_seconds": event.pong_timeout},
            )
        elif kind is Refused:
            assert isinstance(event, Refused)
            if event.op == "auth":
                log.warning(
                    "private stream auth refused; check the API key, secret and environment",
                    extra={"account": account, "ret_msg": event.ret_msg},
                )
            else:
                log.warning(
                    "private stream subscribe refused",
                    extra={"account": account, "topics": ",".join(event.topics), "ret_msg": event.ret_msg},
                )
        elif kind is AckTimeout:
            assert isinstance(event, AckTimeout)
            log.warning(
                "no acknowledgement in time",
                extra={"account": account, "waiting_for": event.waiting_for, "timeout_seconds": event.timeout},
            )
        elif kind is ConnectionLost:
            assert isinstance(event, ConnectionLost)
            self._lost(event)
        elif kind is BudgetWait:
            assert isinstance(event, BudgetWait)
            log.warning(
                "connection budget for the host exhausted; waiting",
                extra={"account": account, "host": event.host, "wait_seconds": round(event.wait, 1)},
            )
        elif kind is CallbackFailed:
            assert isinstance(event, CallbackFailed)
            log.error(_FAILED[event.what], exc_info=event.error, extra={"account": account})

    def _lost(self, event: ConnectionLost) -> None:
        if event.unexpected is not None:
            log.error("private stream failed unexpectedly", exc_info=event.unexpected, extra={"account": self.account})
        elif event.reason == "closed":
            log.info("private stream closed", extra={"account": self.account, "error": event.error})
        elif event.reason == "redirect":
            log.warning(
                "private stream redirected; not followed (the credentials would go elsewhere)",
                extra={"account": self.account, "status": event.status},
            )
        else:
            log.warning(
                "private stream error",
                extra={"account": self.account, "error_type": event.error_type, "error": event.error},
            )


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
