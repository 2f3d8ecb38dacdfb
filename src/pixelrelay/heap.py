"""Giving freed heap memory back to the OS, which glibc on its own keeps.

Nothing in the process holds memory per accepted event (bench.queue_memory --probe
--tracemalloc: Python's traced memory, glibc's in-use bytes and SQLite's stay flat while the
queue grows). But a 500-event request allocates megabytes of 0.5-2 KB objects (each event's
payload, its JSON and row strings) that are freed together; glibc keeps such holes in its
heaps and returns memory only from a heap's top, so `serve`'s RSS rose while it took traffic
(99 -> 111 MiB from 40k to 800k queued) with 30-50 MiB of it free. malloc_trim hands every
free page back (3-4 ms for such a heap; 112 -> 77 MiB). It does not stop the heaps' creep
itself (fragmentation), only keeps its free part from staying resident between trims.

glibc also raises its mmap threshold to the largest block freed (up to 32 MiB), so a request's
250 KB body and a delivery's 1 MB JSON were carved from the heap's top as well, which grew
around them and kept their holes. large_blocks_on_own_pages fixes the threshold at 64 KiB:
such a block that no hole fits gets pages of its own, unmapped at free. That halves the creep
(trim off, 40k -> 800k queued through HTTP: +21 and +27 MiB by default, +11 and +7 with it;
bench.queue_memory) but does not end it: small blocks still fragment the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from functools import cache

TRIM_EVERY_S = 10.0
OWN_PAGES_FROM = 64 * 1024  # a block this large is mmapped, and unmapped when freed
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's <malloc.h>


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on a C library without it (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


@cache
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt, or None on a C library without it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def large_blocks_on_own_pages() -> bool:
    """From now on, blocks of OWN_PAGES_FROM bytes and more are mmapped (fixed: glibc no longer
    raises the threshold), and the heap's top is returned from 2 x that free; whether glibc
    took the settings (False where there is no mallopt)."""
    fn = _mallopt()
    if fn is None:
        return False
    return all(fn(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, OWN_PAGES_FROM), (_M_TRIM_THRESHOLD, 2 * OWN_PAGES_FROM),
        (_M_TOP_PAD, 0)))


def trim() -> bool:
    """Return the free pages of every malloc heap to the OS; whether any were returned
    (always False where the C library has no malloc_trim)."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False


def trim_periodically(every_s: float = TRIM_EVERY_S) -> Callable[[], None]:
    """Trim every `every_s` seconds on a thread of its own (ctypes lets go of the GIL, so the
    event loop runs on meanwhile); the function that stops it."""
    if _malloc_trim() is None:
        return lambda: None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            trim()

    thread = threading.Thread(target=loop, name="pixelrelay-heap-trim", daemon=True)
    thread.start()

    def stop_trimming() -> None:
        stop.set()
        thread.join()

    return stop_trimming
