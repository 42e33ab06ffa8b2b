"""Pauses the exporter would cause itself, kept out of the pongs it times.

**Garbage collection.** A full collection walks every tracked object. With 1,000 accounts
that is hundreds of thousands of long-lived objects (connections, supervisors, metric
children), and the walk stalls the event loop for hundreds of milliseconds, set off by the
garbage a scrape leaves. ``gc.freeze()`` moves the objects alive now into a permanent
generation that later collections skip; the fleet calls :func:`freeze_survivors` after
start-up and the web app after each scrape. The cost: an object frozen while alive that later
dies inside a reference cycle (a closed connection, after a reconnect) is not reclaimed;
reconnects are rare, so this stays small.

**Collections during a scrape.** Rendering 1,000 accounts holds tens of thousands of fresh
tuples for a few tens of milliseconds, enough to set off young-generation collections in
the rendering thread, up to 8 ms each with the interpreter held (measured at 1,000
accounts), while the loop waits. :func:`no_collections` turns automatic collection off while
a body is rendered (rendering makes no reference cycles, so nothing is lost) and the web app
collects the young generations right after, on its own terms (:func:`freeze_survivors`).

**The worker threads.** /metrics is written on the loop in slices, but gzip compresses it in
a worker thread and the status board is built in one, and by default the interpreter lets a
thread keep the GIL for 5 ms before the event loop gets a turn: every pong read during a long
render could wait that long, several times over. :func:`prefer_the_loop` shortens the switch
interval to 0.5 ms, so the loop reads a pong within about that while a worker runs (the
worker itself gets a little slower).
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SWITCH_INTERVAL_SECONDS = 0.0005


def freeze_survivors() -> None:
    """Collect the young generations (so fresh cyclic garbage is freed, not frozen), then freeze."""
    gc.collect(1)
    gc.freeze()


_pausers = 0
_pausers_lock = threading.Lock()


@contextmanager
def no_collections() -> Iterator[None]:
    """No automatic collection while any thread is inside; the last one out turns it back on."""
    global _pausers
    with _pausers_lock:
        _pausers += 1
        gc.disable()
    try:
        yield
    finally:
        with _pausers_lock:
            _pausers -= 1
            if _pausers == 0:
                gc.enable()


def prefer_the_loop() -> None:
    """Let the event loop's thread take the GIL back from a rendering thread within 0.5 ms."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
