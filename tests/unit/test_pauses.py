"""No automatic collection while a scrape renders; back on when the last renderer is done."""

from __future__ import annotations

import gc
import threading

from exporter.runtime.pauses import no_collections


def test_collection_is_off_inside_and_back_on_after():
    assert gc.isenabled()
    with no_collections():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_two_overlapping_renders_keep_it_off_until_both_are_done():
    inside, leave = threading.Event(), threading.Event()

    def render() -> None:
        with no_collections():
            inside.set()
            leave.wait(5)

    other = threading.Thread(target=render)
    other.start()
    inside.wait(5)
    with no_collections():
        pass
    assert not gc.isenabled()  # the other thread is still rendering
    leave.set()
    other.join(5)
    assert gc.isenabled()


def test_an_error_while_rendering_turns_it_back_on():
    try:
        with no_collections():
            raise ValueError("a family failed to render")
    except ValueError:
        pass
    assert gc.isenabled()
