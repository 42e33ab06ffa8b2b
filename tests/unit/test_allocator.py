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

    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: Recording)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert allocator.keep_memory_small() is True
    assert calls == [allocator.M_MMAP_THRESHOLD]


def test_without_glibc_nothing_happens(monkeypatch):
    class Musl:
        def mallopt(self, option, value):
            raise AssertionError("musl's mallopt must not be called")

    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: Musl())
    assert allocator.keep_memory_small() is False
