"""What a drill decides, as pure functions: refusals, the canary order, and the verdict.

Sans-I/O: the shell in :mod:`.run` passes in what it saw (open orders, the last price, the
times of the cut and of the cancel) and prints or records what comes back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from ..config import DrillSettings
from ..config.environment import is_mainnet
from ..dcp import PRODUCT_CATEGORY, SHORTEST_MAX_ACTIVE_TIME, is_cancel_by_dcp

CANARY_LINK_PREFIX = "dcp-drill-"
SILENCE_IDLE_CUTOFF = SHORTEST_MAX_ACTIVE_TIME  # a silent armed connection asks for it, and dies after it
PRICE_DIGITS = 3  # the canary's price keeps 3 significant digits: a multiple of any tick below it

# Outcomes; only PASSED exits 0.
PASSED = "passed"
LATE = "late"  # DCP fired, but after window + tolerance
NOT_FIRED = "not_fired"  # nothing cancelled the canary by window + tolerance
OTHERS_CANCELLED = "others_cancelled"  # fired in time, but other orders went with the canary
FILLED = "filled"
REJECTED = "rejected"
CANCELLED_OTHERWISE = "cancelled_otherwise"  # the canary went, but not by DCP
REFUSED = "refused"
INTERRUPTED = "interrupted"
ERROR = "error"


def mainnet_refusal(environment: str, allowed: bool) -> str | None:
    if is_mainnet(environment) and not allowed:
        return (
            "refusing to drill on mainnet: DCP cancels every active order of the product on the account. "
            "Drill on testnet with a dedicated sub-account, or pass --mainnet for a dedicated mainnet sub-account"
        )
    return None


def others_refusal(product: str, others: list[dict], allowed: bool) -> str | None:
    """Other active orders of the product would be cancelled too: refuse, naming a few."""
    if not others or allowed:
        return None
    shown = ", ".join(f"{o.get('symbol', '?')} {o.get('side', '?')} {o.get('orderId', '?')}" for o in others[:5])
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    return (
        f"refusing: the account has {len(others)} other active {product} order(s) ({shown}{more}), "
        "and DCP would cancel them with the canary. Use a sub-account without orders, "
        "or pass --allow-other-orders to accept that"
    )


def canary_price(last_price: str, side: str, offset: float) -> str:
    """``offset`` of the last price away from the market, rounded further away to 3 significant digits."""
    target = Decimal(last_price) * Decimal(str(1 - offset if side == "Buy" else 1 + offset))
    exponent = math.floor(math.log10(target)) - (PRICE_DIGITS - 1)
    step = Decimal(1).scaleb(exponent)
    rounding = ROUND_FLOOR if side == "Buy" else ROUND_CEILING
    return format((target / step).to_integral_value(rounding) * step, "f")


def canary_order(settings: DrillSettings, price: str, link_id: str) -> dict[str, str]:
    """Bybit's order body: a post-only limit order, so it can only ever rest, never take."""
    return {
        "category": PRODUCT_CATEGORY[settings.product],
        "symbol": settings.symbol,
        "side": settings.side,
        "orderType": "Limit",
        "qty": settings.qty,
        "price": price,
        "timeInForce": "PostOnly",
        "orderLinkId": link_id,
    }


@dataclass
class DrillReport:
    """Everything a drill saw; ``judge`` fills in the outcome. Holds no key, secret or signature."""

    account: str
    environment: str
    product: str
    category: str
    symbol: str
    cut: str
    tolerance_seconds: float
    window_seconds: int | None = None
    canary_order_id: str | None = None
    canary_price: str | None = None
    started_at: float | None = None
    cut_at: float | None = None
    cancelled_at: float | None = None
    cancel_type: str | None = None
    seen_on: str | None = None  # "stream" or "history"
    trigger_delay_seconds: float | None = None
    slack_seconds: float | None = None
    other_orders_cancelled: list[str] = field(default_factory=list)
    canary_final_status: str | None = None
    canary_cleanup: str = "not placed"
    outcome: str = ERROR
    passed: bool = False
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> list[str]:
        """The terminal summary: one fact a line."""
        lines = [
            f"DCP drill {'PASSED' if self.passed else 'FAILED'} ({self.outcome}): {self.message}",
            f"  account {self.account} ({self.environment}), product {self.product}, {self.category} {self.symbol}",
        ]
        if self.window_seconds is not None:
            lines.append(
                f"  DCP window {self.window_seconds} s, tolerance {self.tolerance_seconds:g} s, cut: {self.cut}"
            )
        if self.canary_order_id:
            lines.append(f"  canary {self.canary_order_id} at {self.canary_price}: {self.canary_cleanup}")
        if self.trigger_delay_seconds is not None:
            lines.append(
                f"  cut -> CancelByDCP: {self.trigger_delay_seconds:.2f} s "
                f"(slack over the window {self.slack_seconds:+.2f} s, seen on the {self.seen_on})"
            )
        if self.other_orders_cancelled:
            lines.append(f"  other orders cancelled by DCP: {', '.join(self.other_orders_cancelled)}")
        return lines


def judge(report: DrillReport) -> DrillReport:
    """The verdict from the canary's fate: DCP's cancel within window + tolerance, and nothing else.

    A ``silence`` cut kills the armed connection only at the idle cut-off, so there the cut-off
    is part of the expected delay: the slack is over window + cut-off."""
    fate = report.cancel_type
    if report.cut_at is not None and report.cancelled_at is not None and is_cancel_by_dcp(fate):
        delay = report.cancelled_at - report.cut_at
        report.trigger_delay_seconds = round(delay, 3)
        window = (report.window_seconds or 0) + (SILENCE_IDLE_CUTOFF if report.cut == "silence" else 0)
        report.slack_seconds = round(delay - window, 3)
        if delay > window + report.tolerance_seconds:
            beyond = "window + idle cut-off + tolerance" if report.cut == "silence" else "window + tolerance"
            return _verdict(report, LATE, f"DCP fired {delay:.1f} s after the cut, beyond {beyond}")
        if report.other_orders_cancelled:
            n = len(report.other_orders_cancelled)
            return _verdict(report, OTHERS_CANCELLED, f"DCP fired in time, but also cancelled {n} other order(s)")
        return _verdict(report, PASSED, f"DCP cancelled the canary {delay:.2f} s after the cut", passed=True)
    if report.canary_final_status == "Filled" or report.canary_final_status == "PartiallyFilled":
        return _verdict(report, FILLED, "the canary traded; move it further from the market (price offset)")
    if report.canary_final_status in ("Rejected", "Cancelled", "Deactivated") and report.cut_at is None:
        return _verdict(report, REJECTED, "Bybit did not let the canary rest (post-only would take, or refused)")
    if report.canary_final_status in ("Cancelled", "Deactivated"):
        return _verdict(report, CANCELLED_OTHERWISE, f"the canary was cancelled by {fate or 'someone'}, not by DCP")
    if report.cut_at is not None:
        return _verdict(
            report,
            NOT_FIRED,
            "DCP did not cancel the canary within window + tolerance: is another dcp.* connection alive "
            "(a bot, a guardian), or is DCP off for the product?",
        )
    return report


def _verdict(report: DrillReport, outcome: str, message: str, *, passed: bool = False) -> DrillReport:
    report.outcome, report.message, report.passed = outcome, message, passed
    return report
