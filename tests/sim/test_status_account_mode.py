"""The status page shows each account's mode (a fact on its card, ``account_mode`` in the JSON)
and, under UTA 1.0 with DERIVATIVES DCP, that inverse orders are not protected."""

from __future__ import annotations

import json

from status_page import article, fact, state
from test_status import Desk

from exporter.status import api, render


def test_the_card_shows_the_account_mode_and_the_unprotected_inverse_orders():
    desk = Desk()
    desk.healthy()
    desk.step()
    assert desk.status().account_mode == ""
    card = article(render.page(desk.board(), "/metrics"), "a")
    assert fact(card, "account-mode") == "not read yet" and state(card) == "ok"

    desk.metrics.unified_margin_status.labels("a").set(3)
    desk.metrics.unprotected_category.labels("a", "inverse").set(1)
    desk.step()
    status = desk.status()
    assert status.account_mode == "UTA 1.0 (3)"
    assert status.state == "degraded"
    assert [(r.text, r.alert) for r in status.reasons] == [
        ("inverse orders are not protected by DCP under UTA 1.0 (3)", "BybitDcpCategoryUnprotected")
    ]
    card = article(render.page(desk.board(), "/metrics"), "a")
    assert fact(card, "account-mode") == "UTA 1.0 (3)"
    assert json.loads(json.dumps(api.status(desk.board())))["accounts"][0]["account_mode"] == "UTA 1.0 (3)"

    desk.metrics.unified_margin_status.labels("a").set(5)
    desk.metrics.unprotected_category.labels("a", "inverse").set(0)
    desk.step()
    assert (desk.status().state, desk.status().account_mode) == ("ok", "UTA 2.0 (5)")
