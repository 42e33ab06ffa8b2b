"""The allocator options that keep scrape bodies from staying resident (see exporter/runtime/allocator.py).

Their effect is measured in benchmarks/bench_vs_sdk.py (resident memory at 1,000 accounts);
here: glibc takes them, and a variable the operator set is left alone."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest

from exporter.runtime import allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")


@glibc
def test_glibc_takes_both_options(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert allocator.keep_memory_small() is True


@glibc
def test_an_operators_variable_wins(monkeypatch):
    calls = []
    libc = ctypes.CDLL(ctypes.util.find_library("c"))

    class Recording:
        gnu_get_libc_version = libc.gnu_get_libc_version

        class mallopt:  # stands in for the C function
            argtypes = restype = None

            def __new__(cls, option, value):
                calls.append(option)
                return 1

    monkeypatch.setattr(allocator, "_glibc", lambda: Recording)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert allocator.keep_memory_small() is True
    assert calls == [allocator.M_MMAP_THRESHOLD]


def test_without_glibc_nothing_happens(monkeypatch):
    class Musl:
        def mallopt(self, option, value):
            raise AssertionError("musl's mallopt must not be called")

        def malloc_trim(self, pad):
            raise AssertionError("musl's malloc_trim must not be called")

    allocator._glibc.cache_clear()
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: Musl())
    try:
        assert allocator.keep_memory_small() is False
        assert allocator.give_back() is False
    finally:
        allocator._glibc.cache_clear()


def rss_kib() -> int:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])


@glibc
def test_give_back_returns_the_free_pages_inside_the_heap():
    """Freed blocks under a live one stay resident after ``free``; ``give_back`` returns them."""
    blocks = [bytes(4000) for _ in range(10_000)]  # 40 MB from the heap (each below the mmap threshold)
    top = bytes(4000)  # lives on above them: the heap's top cannot shrink past it
    del blocks
    freed = rss_kib()
    assert allocator.give_back() is True
    assert rss_kib() < freed - 20_000, "the 40 MB freed stayed resident"
    del top
