"""Pauses the exporter would cause itself, kept out of the pongs it times.

**Garbage collection.** A full collection walks every tracked object. With 1,000 accounts
that is hundreds of thousands of long-lived objects (connections, supervisors, metric
children), and the walk stalls the event loop for hundreds of milliseconds, set off by the
garbage a scrape leaves. ``gc.freeze()`` moves the objects alive now into a permanent
generation that later collections skip; the fleet calls :func:`freeze_survivors` after
start-up and the web app after each scrape. The cost: an object frozen while alive that later
dies inside a reference cycle (a closed connection, after a reconnect) is not reclaimed;
reconnects are rare, so this stays small.

**The scrape's thread.** /metrics is rendered in a worker thread, and by default the
interpreter lets a thread keep the GIL for 5 ms before the event loop gets a turn: every pong
read during a 1 s render could wait that long, several times over. :func:`prefer_the_loop`
shortens the switch interval to 0.5 ms, so the loop reads a pong within about that while a
scrape renders (the render itself gets a little slower).
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_SECONDS = 0.0005


def freeze_survivors() -> None:
    """Collect the young generations (so fresh cyclic garbage is freed, not frozen), then freeze."""
    gc.collect(1)
    gc.freeze()


def prefer_the_loop() -> None:
    """Let the event loop's thread take the GIL back from a rendering thread within 0.5 ms."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
