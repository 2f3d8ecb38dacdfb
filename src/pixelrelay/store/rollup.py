"""Per-minute partial results of the diagnostics window, and how they add up. No SQL here.

A window report is a sum over time: each window query groups the rows of a time range and
counts them, so the report of [since, now) is the report of its minutes added together. The
store keeps each settled minute's result (`window_minutes`) and each whole clean hour's sum
(`window_hours`), marks a minute dirty when a row it counted changes later (triggers in the
migrations; SQLite's inserts mark in the insert code), and answers a window from the clean
hours and minutes plus an exact scan of the rest: the part-minute at the start, dirty or
missing minutes, and the unsettled tail. The numbers are those of one scan of the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from pixelrelay.store.codec import MATCH_KEY_BITS
from pixelrelay.store.rows import QueueRow, WindowRows

MINUTE_S = 60
HOUR_MINUTES = 60
# A minute is computed once no transaction can still write into it: ingest stamps rows with
# its own clock, so this covers a slow group commit and clocks a little apart across hosts.
SETTLE_S = 120.0
HORIZON_S = 7 * 86400.0 + 2 * MINUTE_S  # the longest window (7 d), plus its part-minutes
OPEN_END = 1e18  # the tail range runs to whatever is newest
ROLL_UP_BATCH = 60  # minutes per write transaction, so ingest never waits long behind one

# For each range field: how many leading columns are the group's key, then how each other
# column adds up ("+" sum, "<" min). Latencies are not summed (a sample, read exactly).
_COMBINE: dict[str, tuple[int, str]] = {
    "accepted": (1, "+"),  # name, n
    "duplicates": (1, "++"),  # name, n, merged
    "ingest_rejections": (3, "+"),  # name, field, reason, n
    "deliveries": (5, "+"),  # destination, name, dest_event, state, dead_reason, n
    "dead": (5, "+"),  # destination, name, dead_reason, code, message, n
    # name, min(dest_event), n, a count per match key (a minute stored before a key was
    # counted has fewer: decode pads them with 0, which is what a scan of it gives)
    "coverage": (1, "<" + "+" * (1 + len(MATCH_KEY_BITS))),
    "notices": (3, "+"),  # event, field, kind, n
    "collect_refusals": (2, "+"),  # reason, origin, n
    "dedup": (1, "++"),  # name, server arrivals, also from the browser
    "enrichment": (1, "++"),  # name, server events, enriched
    "trend_received": (1, "+"),  # minute, n
    "trend_delivered": (1, "+"),  # minute (of delivered_at), n
}
RANGE_FIELDS = tuple(_COMBINE)


def minute_of(t: float) -> int:
    return math.floor(t / MINUTE_S)


def first_whole_minute(since: float) -> int:
    """The first minute that lies wholly in a window starting at `since`."""
    return math.ceil(since / MINUTE_S)


def encode(rows: WindowRows) -> bytes | None:
    """A minute's result as stored; None when the minute holds nothing."""
    data = {f: getattr(rows, f) for f in RANGE_FIELDS if getattr(rows, f)}
    return orjson.dumps(data) if data else None


def decode(blob: bytes | None) -> WindowRows:
    rows = WindowRows()
    for name, values in (orjson.loads(blob) if blob else {}).items():
        if name in _COMBINE:
            width = _COMBINE[name][0] + len(_COMBINE[name][1])
            setattr(rows, name, [(*v, *(0,) * (width - len(v))) for v in values])
    return rows


def merge(parts: Iterable[WindowRows]) -> WindowRows:
    """The range fields of several disjoint ranges added up, group by group."""
    sums: dict[str, dict[tuple[Any, ...], list[Any]]] = {f: {} for f in RANGE_FIELDS}
    for part in parts:
        for name, (width, ops) in _COMBINE.items():
            into = sums[name]
            for row in getattr(part, name):
                key = tuple(row[:width])
                have = into.get(key)
                if have is None:
                    into[key] = list(row[width:])
                    continue
                for i, op in enumerate(ops):
                    v = row[width + i]
                    if op == "+":
                        have[i] = (have[i] or 0) + (v or 0)
                    elif v is not None and (have[i] is None or v < have[i]):
                        have[i] = v
    out = WindowRows()
    for name, into in sums.items():  # in key order, so the report's order is the same
        setattr(out, name, [(*k, *into[k]) for k in sorted(into, key=_sortable)])
    return out


def _sortable(key: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    return tuple((v is not None, "" if v is None else v) for v in key)


def buckets(per_minute: Sequence[tuple[int, int]], since: float,
            bucket_s: float) -> list[tuple[int, int]]:
    """Per-minute counts -> (bucket, n) for the trend. Buckets start at the window's first
    minute, so every minute falls in exactly one (bucket_s is a whole number of minutes)."""
    origin = minute_of(since) * MINUTE_S
    out: dict[int, int] = {}
    for minute, n in per_minute:
        b = int((minute * MINUTE_S - origin) // bucket_s)
        out[b] = out.get(b, 0) + n
    return sorted(out.items())


def first_whole_hour(since: float) -> int:
    """The first hour that lies wholly in a window starting at `since`."""
    return math.ceil(first_whole_minute(since) / HOUR_MINUTES)


def minutes_of_hours(hours: Iterable[int]) -> list[int]:
    return [h * HOUR_MINUTES + i for h in hours for i in range(HOUR_MINUTES)]


def hours_of(minutes: Iterable[int]) -> list[int]:
    return sorted({m // HOUR_MINUTES for m in minutes})


def hour_bounds(hour: int) -> dict[str, int]:
    """The minutes [lo, hi) of an hour."""
    return {"lo": hour * HOUR_MINUTES, "hi": (hour + 1) * HOUR_MINUTES}


def whole_hour(found: Sequence[tuple[int, bytes | None]]) -> tuple[bool, bytes | None]:
    """From an hour's stored minutes (each with the hour's count of dirty minutes): whether
    the hour is whole and clean, and then its minutes added up, as stored."""
    if len(found) != HOUR_MINUTES or any(dirty for dirty, _blob in found):
        return False, None
    return True, encode(merge(decode(blob) for _d, blob in found))


def uncovered(since: float, stored: Iterable[int]) -> list[tuple[float, float]]:
    """The time ranges of [since, ...) that no stored clean minute covers, to scan exactly:
    the part-minute at the start, each run of missing minutes, and the open tail."""
    first = first_whole_minute(since)
    have = sorted(m for m in set(stored) if m >= first)
    ranges: list[tuple[float, float]] = []
    lo = since
    for m in have:
        start = float(m * MINUTE_S)
        if start > lo:
            ranges.append((lo, start))
        lo = start + MINUTE_S
    ranges.append((lo, OPEN_END))
    return ranges


def to_compute(now: float, stored: Iterable[int], dirty: Iterable[int], limit: int,
               first_row: float | None) -> tuple[list[int], int]:
    """(the minutes one pass computes, oldest first, at most `limit`; the oldest minute
    worth keeping). Settled minutes of the horizon that are missing or dirty, from the one
    of the oldest row counted (`first_row`, None: no row): the empty minutes before it are
    left to the readers, who scan them as one range (a new database would otherwise store
    the 10,080 empty minutes of 7 days while its first requests come in)."""
    oldest, settled = minute_of(now - HORIZON_S), minute_of(now - SETTLE_S)
    have = set(stored)
    todo = {m for m in dirty if oldest <= m < settled}
    start = settled if first_row is None else max(oldest, minute_of(first_row))
    todo.update(m for m in range(start, settled) if m not in have)
    return sorted(todo)[:limit], oldest


def bounds(minute: int) -> tuple[float, float]:
    start = float(minute * MINUTE_S)
    return start, start + MINUTE_S


def span(minutes: Sequence[int]) -> dict[str, float]:
    """The time range [lo, hi) from the first to the end of the last of sorted minutes."""
    if not minutes:
        return {"lo": 0.0, "hi": 0.0}
    return {"lo": float(minutes[0] * MINUTE_S), "hi": float((minutes[-1] + 1) * MINUTE_S)}


# destination, waiting (pending or in flight) created before the window, in flight,
# the oldest pending row's created_at, paused, its reason, since when
QueueHead = tuple[str, int, int, float | None, bool, str | None, float | None]


def window_rows(ranges: Sequence[WindowRows], since: float, bucket_s: float,
                latencies: list[tuple[str, float]],
                heads: Sequence[QueueHead] = ()) -> WindowRows:
    """What the report reads: the ranges added up, trends in the report's buckets, and the
    queues of the destinations whose heads were read."""
    out = merge(ranges)
    out.trend_received = buckets(out.trend_received, since, bucket_s)
    out.trend_delivered = buckets(out.trend_delivered, since, bucket_s)
    out.latencies = latencies
    out.queues = queues(out, heads)
    return out


def queues(window: WindowRows, heads: Sequence[QueueHead]) -> list[QueueRow]:
    """Each destination's queue without counting it row by row: the window already counts
    its deliveries waiting (in flight as pending), so what waits is those plus the ones
    created before the window, and pending is that less what is in flight."""
    waiting: dict[str, int] = {}
    for destination, _name, _dest_event, state, _reason, n in window.deliveries:
        if state == "pending":
            waiting[destination] = waiting.get(destination, 0) + n
    return [QueueRow(d, before + waiting.get(d, 0) - in_flight, in_flight, oldest,
                     bool(paused), reason if paused else None, at if paused else None)
            for d, before, in_flight, oldest, paused, reason, at in heads]

