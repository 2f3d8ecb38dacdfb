"""Memory that a long-running gateway frees goes back to the OS, and no cache grows with traffic."""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import subprocess
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


# Run in a fresh interpreter: this one's heaps keep the holes earlier tests left, and a block
# may come from one of those whatever the threshold.
_LARGE_BLOCK_PROBE = """
import ctypes, sys
from pixelrelay import heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
if sys.argv[1] == "tuned":
    assert heap.large_blocks_on_own_pages()
libc.free(libc.malloc(8 * 2**20))  # glibc's default threshold is now 8 MiB
mapped = libc.mallinfo2().hblkhd
block = libc.malloc(4 * 2**20)  # a delivery's JSON, say
print(libc.mallinfo2().hblkhd - mapped)
libc.free(block)
"""


def _mapped_for_a_large_block(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _LARGE_BLOCK_PROBE, mode], check=True,
                          capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or heap._mallopt() is None,
                    reason="glibc's mallopt and mallinfo2 are glibc only")
def test_large_blocks_get_pages_of_their_own() -> None:
    """A request's body or a delivery's JSON is mmapped (and unmapped when freed) even after a
    larger block was freed: glibc's default then carves it from the heap, whose holes the
    small long-lived objects allocated meanwhile pin."""
    assert _mapped_for_a_large_block("default") == 0  # what the setting is for
    assert _mapped_for_a_large_block("tuned") >= 4 * 2**20


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
