"""The account's metric projections: what a poll or the trigger tracker found, written into the metrics.

Plain functions of the metrics, the account and a value the pure pieces returned; they decide
nothing and log nothing. The supervisor and the trigger path call them; the status page and
the alerts read what they write.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..bybit.errors import code_label, hint
from ..bybit.models import DcpSetting
from ..dcp import PRODUCTS
from ..metrics import Metrics
from .triggers import Observation

TRIGGERS_LISTED = 10  # bybit_dcp_trigger_info keeps each product's latest triggers, no more


def record_triggers(metrics: Metrics, account: str, observation: Observation) -> None:
    """Put one :class:`Observation` of the trigger tracker into the account's metrics."""
    for category, count in observation.cancelled.items():
        metrics.cancelled_orders.labels(account, category).inc(count)
    for event in observation.events:
        if event.new:
            metrics.triggers.labels(account, event.product).inc()
            list_trigger(metrics, account, event.product, str(int(event.started_at * 1000)))
    for product, at in observation.last_trigger.items():
        metrics.last_trigger.labels(account, product).set(at)
    if observation.ignored:
        metrics.ignored_cancels.labels(account).inc(observation.ignored)
    if observation.undated:
        metrics.invalid_values.labels(account, "updatedTime").inc(observation.undated)


def list_trigger(metrics: Metrics, account: str, product: str, trigger: str) -> None:
    """Add a trigger to ``bybit_dcp_trigger_info``, dropping the product's oldest beyond
    :data:`TRIGGERS_LISTED`. The id is Bybit's time, so a restarted exporter, or a second
    replica, names the same trigger the same way and Alertmanager sees one alert."""
    metrics.trigger_info.labels(account, product, trigger).set(1)
    listed = sorted(
        (int(trigger_id), trigger_id)
        for (a, p, trigger_id), _ in metrics.trigger_info.rows()
        if a == account and p == product
    )
    for _, old in listed[:-TRIGGERS_LISTED]:
        metrics.trigger_info.remove(account, product, old)


def apply_dcp_info(metrics: Metrics, account: str, reported: Mapping[str, DcpSetting]) -> None:
    """Set the DCP-config gauges from one successful poll. Bybit lists only enabled products:
    a product it does not list is not enabled."""
    for product in PRODUCTS:
        setting = reported.get(product)
        on = setting is not None and setting.on
        metrics.enabled.labels(account, product).set(1 if on else 0)
        if setting is not None and on:
            metrics.window.labels(account, product).set(setting.window)
        else:
            metrics.window.remove(account, product)


def forget_dcp_info(metrics: Metrics, account: str) -> None:
    """The DCP state is unknown (no good poll yet, or the last one failed): export no
    ``enabled`` or ``window`` at all rather than a 0 that would say "not enabled"."""
    for product in PRODUCTS:
        metrics.enabled.remove(account, product)
        metrics.window.remove(account, product)


def set_poll_error(metrics: Metrics, account: str, code: str | None, advice: str | None = None) -> None:
    """``bybit_dcp_last_poll_error_info``: the failing poll's code and hint (``advice``, else the
    code's own), or none after a good poll."""
    advice = None if code is None else advice or hint(code)
    code = None if code is None else code_label(code)
    for (a, listed_code, listed_hint), _ in metrics.last_poll_error.rows():
        if a == account and (listed_code, listed_hint) != (code, advice):
            metrics.last_poll_error.remove(account, listed_code, listed_hint)
    if code is not None and advice is not None:
        metrics.last_poll_error.labels(account, code, advice).set(1)


class PollProjection:
    """One account's poll series, written as the functions above write them, with the label keys
    made once: a thousand accounts polled every few seconds make this the hottest metric path
    after the REST client's own, and ``labels`` checks and converts every value on every call."""

    __slots__ = ("_account", "_enabled", "_error", "_key", "_metrics")

    def __init__(self, metrics: Metrics, account: str) -> None:
        self._metrics = metrics
        self._account = account
        self._key = (account,)
        self._enabled = tuple((product, (account, product)) for product in PRODUCTS)  # enabled's and window's
        # The ``last_poll_error`` key this projection wrote last: :func:`set_poll_error` finds an
        # account's row by reading every row, on every poll of every account (O(accounts) per
        # poll while all of them fail, as when Bybit is down for everyone).
        self._error: tuple[str, ...] | None = None

    def succeeded(self, reported: Mapping[str, DcpSetting], at: float) -> None:
        """A good poll: ``up`` 1, its time, the DCP-config gauges (:func:`apply_dcp_info`), no
        poll error (as :func:`set_poll_error` with None writes it)."""
        metrics = self._metrics
        metrics.up.put(self._key, 1)
        metrics.last_poll_success.put(self._key, at)
        enabled, window = metrics.enabled, metrics.window
        for product, key in self._enabled:
            setting = reported.get(product)
            if setting is not None and setting.on:
                enabled.put(key, 1)
                window.put(key, setting.window)
            else:
                enabled.put(key, 0)
                window.forget(key)
        if self._error is not None:
            metrics.last_poll_error.forget(self._error)
            self._error = None

    def failed(self, code: str, advice: str | None = None) -> None:
        """A failed poll: ``up`` 0 and no DCP config (:meth:`unknown`), and the poll error as
        :func:`set_poll_error` writes it."""
        self.unknown()
        key = (self._account, code_label(code), advice or hint(code))
        errors = self._metrics.last_poll_error
        if self._error is not None and self._error != key:
            errors.forget(self._error)
        errors.put(key, 1)
        self._error = key

    def unknown(self) -> None:
        """The DCP state is unknown: ``up`` 0 and no ``enabled`` or ``window`` (:func:`forget_dcp_info`)."""
        metrics = self._metrics
        metrics.up.put(self._key, 0)
        for _, key in self._enabled:
            metrics.enabled.forget(key)
            metrics.window.forget(key)
