"""Reading the status board's HTML in tests: an account's card, a product's cells, a fact."""

from __future__ import annotations

import html
import re


def article(page: str, account: str) -> str:
    """The card of ``account`` (its name as it appears escaped in the page)."""
    start = page.index(f'data-account="{html.escape(account, quote=True)}" data-state=')
    return page[start : page.index("</article>", start)]


def state(card: str) -> str:
    return re.search(r'data-state="(\w+)"', card).group(1)


def text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def cells(card: str, product: str) -> list[str]:
    """The text of a product's row: product, DCP, window, desired, drift, re-assert, guardian."""
    row = re.search(rf'<tr data-product="{product}">(.*?)</tr>', card).group(1)
    return [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]


def fact(card: str, key: str) -> str:
    """A fact's value: poll, pong, error, reconnects, rtt or trigger."""
    value = re.search(rf'<div data-fact="{key}"><b>[^<]*</b>(.*?)</div>', card).group(1)
    return html.unescape(value)
