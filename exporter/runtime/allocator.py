"""Memory the C allocator would keep after a scrape, given back instead.

A /metrics body for 1,000 accounts is several MB, built and freed on every scrape (and the
status board's, in a worker thread). glibc's malloc serves a block that large with ``mmap``
and unmaps it when it is freed, but each such free raises its mmap threshold to the block's size, so the next
bodies come from the heap and stay resident when freed; and each worker thread gets an
arena of its own (up to 8 per core), where freed blocks linger too. At 1,000 accounts the
two together held about 40 MB that nothing used (``benchmarks/bench_vs_sdk.py``).

:func:`keep_memory_small` fixes the mmap threshold at 512 KiB, so large blocks always go back
to the system when freed, and allows two arenas. Not lower: asyncio reads each socket into a
256 KiB buffer, and below that every read would cost an mmap, an mremap and a munmap. It must run
before the worker threads start. Outside glibc (musl, macOS) it does nothing; the
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_ARENA_MAX`` environment variables, when set, win.

Start-up leaves memory behind too: a thousand handshakes, first polls and their buffers are
freed in the middle of the heap, under blocks that live on, and ``free`` only ever gives back
the heap's top. :func:`give_back` (``malloc_trim(0)``) returns the whole free pages inside it as
well: 5 MB at 1,000 accounts once all are connected (94.4 to 89.1 MB, and it stayed there).
The fleet calls it once its accounts have settled and then every few minutes (a reconnect
storm leaves the same behind); it takes a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 512 * 1024
ARENAS = 2


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (musl also has mallopt and malloc_trim, with no effect)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.gnu_get_libc_version  # noqa: B018
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def give_back() -> bool:
    """Return the heap's free pages to the system (``malloc_trim(0)``); False outside glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def keep_memory_small() -> bool:
    """Set the two allocator options; True when glibc took them."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    taken = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        taken &= mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if "MALLOC_ARENA_MAX" not in os.environ:
        taken &= mallopt(M_ARENA_MAX, ARENAS) == 1
    if not taken:
        log.debug("the C allocator refused an option; memory after scrapes may stay higher")
    return taken
