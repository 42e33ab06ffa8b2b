"""``/api/v1/status``: the board as JSON for scripts and chat bots (pure: the board in, a dict out).

Times are unix seconds; a value nobody knows is ``null``, never 0 or false (an unknown DCP
state is ``"enabled": null``). The sparkline history is left out: the metrics have it.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .model import AccountStatus, Board
from .sampler import FLAPPING_WINDOW_SECONDS


def _account(a: AccountStatus) -> dict[str, Any]:
    trigger = None
    if a.last_trigger_at:
        orders = a.last_trigger.orders if a.last_trigger is not None else {}
        trigger = {"timestamp": a.last_trigger_at, "orders": sum(orders.values()), "categories": dict(orders)}
    return {
        "account": a.account,
        "environment": a.environment,
        "mode": a.mode,
        "state": a.state,
        "account_mode": a.account_mode or None,
        "reasons": [{"state": r.state, "text": r.text, "alert": r.alert} for r in a.reasons],
        "last_good_poll_timestamp": a.last_poll,
        "last_pong_timestamp": a.last_pong,
        "ping_gap_seconds": a.ping_gap,
        "last_error": {"code": a.error_code, "hint": a.error_hint} if a.error_code else None,
        "reconnects_last_hour": a.reconnects_hour,
        # Over BybitDcpReconnectFlapping's range (mixin/config.libsonnet reconnectFlappingWindow).
        "reconnects_flapping_window": {"seconds": FLAPPING_WINDOW_SECONDS, "count": a.reconnects_flapping},
        "rtt_p50_seconds": a.rtt_p50,
        "rtt_p90_seconds": a.rtt_p90,
        "rtt_p99_seconds": a.rtt_p99,
        "last_trigger": trigger,
        "products": [
            {
                "product": p.product,
                "enabled": p.enabled,
                "window_seconds": p.window,
                "desired_window_seconds": p.desired,
                "drift": p.drift,
                "reassert": p.reassert or None,
                "guardian_armed": p.guardian,
            }
            for p in a.products
        ],
        "links": {"dashboard": a.dashboard_url, "runbook": a.runbook_url},
    }


def status(board: Board) -> dict[str, Any]:
    return {
        "version": __version__,
        "generated_at": board.now,
        "ready": board.ready,
        "counts": board.counts(),
        "accounts": [_account(a) for a in board.accounts],
        "events": [
            {"timestamp": e.at, "account": e.account, "kind": e.kind, "severity": e.severity, "text": e.text}
            for e in board.events
        ],
    }
