"""Memory that a long-running gateway frees goes back to the OS, and no cache grows with traffic."""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

import pixelrelay
from pixelrelay import heap


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._malloc_trim() is None,
                    reason="glibc's malloc_trim and /proc are Linux/glibc only")
def test_trim_returns_freed_holes_that_glibc_keeps() -> None:
    """What a 500-event request leaves: many 1 KB objects freed together between a few that
    live on. glibc keeps those holes (they are not at its heap's top); trim() returns them."""
    objects = [bytes(1000) + i.to_bytes(4, "little") for i in range(64_000)]  # ~64 MB
    pinned = objects[::64]  # the long-lived few between the holes
    heap.trim()
    before_free = _rss_bytes()
    del objects
    kept = _rss_bytes()
    assert kept > before_free - 16 * 2**20, "glibc returned the holes itself: nothing to test"
    assert heap.trim()
    assert _rss_bytes() < kept - 32 * 2**20  # most of the ~63 MB freed is given back
    assert len(pinned) == 1000


def test_periodic_trim_stops() -> None:
    stop = heap.trim_periodically(every_s=0.01)
    stop()  # returns: the thread has ended (it would otherwise hang the join)


def _all_modules() -> list[object]:
    out: list[object] = []
    for info in pkgutil.walk_packages(pixelrelay.__path__, "pixelrelay."):
        out.append(importlib.import_module(info.name))
    return out


# Caches whose keys are the package's own constants, never what a request carries.
KEYED_BY_CONSTANTS = {"pixelrelay.store.queries.queries"}  # (engine, SQL file name)


def test_every_cache_is_bounded() -> None:
    """A cache keyed by what requests carry (emails, phones, event names, ids) must have a
    maxsize, or memory grows with every distinct value a client sends. A cache of a function
    without parameters holds one value and is allowed."""
    unbounded = set()
    for module in _all_modules():
        for value in vars(module).values():
            candidates = [value]
            if inspect.isclass(value):
                candidates += [inspect.getattr_static(value, attr) for attr in vars(value)]
            for fn in candidates:
                fn = getattr(fn, "__func__", fn)  # staticmethod/classmethod
                if (isinstance(fn, functools._lru_cache_wrapper)
                        and fn.cache_parameters()["maxsize"] is None
                        and inspect.signature(fn.__wrapped__).parameters):
                    unbounded.add(f"{fn.__module__}.{fn.__qualname__}")
    assert unbounded == KEYED_BY_CONSTANTS, f"caches without maxsize: {unbounded}"
