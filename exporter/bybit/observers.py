"""Observers that only log: what a REST client or a private stream reports, as log lines.

:class:`~.rest.RestClient` and :class:`~.stream.PrivateStream` record nothing themselves; they
tell an observer what happened. These two write the clients' log lines and count nothing: the
drill, the doctor and the guardian's guarded connection use them as they are, and the
exporter's metric observers (:mod:`exporter.monitor.rest_metrics`,
:mod:`exporter.monitor.stream_metrics`) extend them, so every line is written in one place.
"""

from __future__ import annotations

import logging

from .heartbeat import PongResult
from .session import (
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

stream_log = logging.getLogger("exporter.stream")
rest_log = logging.getLogger("exporter.bybit.rest")
# A clock correction this large (seconds) or larger is logged as a warning; smaller ones at debug.
RESYNC_WARNING_SECONDS = 1.0

_FAILED = {
    "on_orders": "on_orders callback failed",
    "on_reconnected": "on_reconnected callback failed",
    "heartbeat": "heartbeat failed unexpectedly",
}


class RestLog:
    """The REST client's warnings for ``account`` (a pause, a clock resync); nothing is counted."""

    def __init__(self, account: str) -> None:
        self.account = account

    def requested(self, endpoint: str) -> None:
        pass

    def duration(self, endpoint: str, seconds: float) -> None:
        pass

    def failed(self, endpoint: str, code: str) -> None:
        pass

    def invalid_value(self, field: str) -> None:
        pass

    def rate_limit(self, endpoint: str, remaining: float | None, limit: float | None) -> None:
        pass

    def clock_skew(self, seconds: float) -> None:
        pass

    def paused(self, endpoint: str, code: str, reset_at: float | None) -> None:
        rest_log.warning(
            "IP banned by Bybit; pausing every call to this host"
            if code == "403"
            else "rate limited by Bybit; pausing this endpoint",
            extra={"account": self.account, "endpoint": endpoint, "code": code, "reset_at": reset_at},
        )

    def resynced(self, offset: float) -> None:
        # Bybit's time is read at every stream start: a warning for each reading would cry wolf on a
        # host whose clock is right, so it is worth one only when the correction is a second or more.
        if abs(offset) >= RESYNC_WARNING_SECONDS:
            rest_log.warning(
                "local clock disagrees with Bybit; signing with a corrected time",
                extra={"account": self.account, "offset_seconds": round(offset, 3)},
            )
        else:
            rest_log.debug("Bybit's time read", extra={"account": self.account, "offset_seconds": round(offset, 3)})


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
                stream_log.warning(
                    "skipped a websocket frame it could not understand (further frames of this kind are only counted)",
                    extra={"account": account, "kind": event.kind, "detail": event.detail},
                )
        elif kind is Connected:
            assert isinstance(event, Connected)
            stream_log.info("private stream up", extra={"account": account, "topics": ",".join(event.topics)})
        elif kind is Reconnect:
            assert isinstance(event, Reconnect)
            stream_log.info(
                "private stream reconnecting",
                extra={"account": account, "reason": event.reason, "delay_seconds": round(event.delay, 3)},
            )
        elif kind is PongTimeout:
            assert isinstance(event, PongTimeout)
            stream_log.warning(
                "no pong in time; reconnecting",
                extra={"account": account, "pong_timeout_seconds": event.pong_timeout},
            )
        elif kind is Refused:
            assert isinstance(event, Refused)
            if event.op == "auth":
                stream_log.warning(
                    "private stream auth refused; check the API key, secret and environment",
                    extra={"account": account, "ret_msg": event.ret_msg},
                )
            else:
                stream_log.warning(
                    "private stream subscribe refused",
                    extra={"account": account, "topics": ",".join(event.topics), "ret_msg": event.ret_msg},
                )
        elif kind is AckTimeout:
            assert isinstance(event, AckTimeout)
            stream_log.warning(
                "no acknowledgement in time",
                extra={"account": account, "waiting_for": event.waiting_for, "timeout_seconds": event.timeout},
            )
        elif kind is ConnectionLost:
            assert isinstance(event, ConnectionLost)
            self._lost(event)
        elif kind is BudgetWait:
            assert isinstance(event, BudgetWait)
            stream_log.warning(
                "connection budget for the host exhausted; waiting",
                extra={"account": account, "host": event.host, "wait_seconds": round(event.wait, 1)},
            )
        elif kind is CallbackFailed:
            assert isinstance(event, CallbackFailed)
            stream_log.error(_FAILED[event.what], exc_info=event.error, extra={"account": account})

    def _lost(self, event: ConnectionLost) -> None:
        if event.unexpected is not None:
            stream_log.error(
                "private stream failed unexpectedly", exc_info=event.unexpected, extra={"account": self.account}
            )
        elif event.reason == "closed":
            stream_log.info("private stream closed", extra={"account": self.account, "error": event.error})
        elif event.reason == "redirect":
            stream_log.warning(
                "private stream redirected; not followed (the credentials would go elsewhere)",
                extra={"account": self.account, "status": event.status},
            )
        else:
            stream_log.warning(
                "private stream error",
                extra={"account": self.account, "error_type": event.error_type, "error": event.error},
            )
