"""The ingest log and the diagnostics read models on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

import orjson

from pixelrelay.store import rollup
from pixelrelay.store.codec import ID_KEY_PARAMS
from pixelrelay.store.queries import queries
from pixelrelay.store.rows import (
    LATENCY_SAMPLE,
    PRUNE_AFTER_S,
    AttemptRow,
    IngestNote,
    LaterCopy,
    NotesCall,
    QueueRow,
    RecentRow,
    RecentSearch,
    RejectionRow,
    TraceRow,
    WindowRows,
    ingest_log_rows,
    recent_filters,
    recent_prefixes,
)
from pixelrelay.store.sqlite.writer import UsesConnections

Q = queries("sqlite", "diagnostics")


class SQLiteDiagnostics(UsesConnections):
    """The IngestLog and ReadModels parts of SQLiteStore."""


    # -- the ingest log ----------------------------------------------------------------------

    async def record_ingest(self, now: float, channel: str,
                            notes: Sequence[IngestNote]) -> None:
        if notes:
            # Queued logs run together (record_notes); the lambda is the fallback per call.
            call = (now, channel, notes)
            await self._db.write(lambda conn: record_notes(conn, [call]), bulk=record_notes,
                                 arg=call)

    async def record_collect_refusal(self, now: float, reason: str,
                                     origin: str | None) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(Q["insert_refusal"], (now, reason, origin))
            conn.execute(Q["prune_refusals"], (now - PRUNE_AFTER_S,))
            mark_inserted(conn, (now,), ())

        await self._db.write(run)

    async def rejections(self, event_id: str | None,
                         order_id: str | None) -> list[RejectionRow]:
        params = {"event_id": event_id or None, "order_id": order_id or None}
        rows = await self._db.read(lambda c: c.execute(Q["rejections"], params).fetchall())
        return [RejectionRow(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]

    async def later_copies(self, event_id: str) -> list[LaterCopy]:
        rows = await self._db.read(
            lambda c: c.execute(Q["later_copies"], (event_id,)).fetchall())
        return [LaterCopy(r[0], r[1], bool(r[2])) for r in rows]

    # -- read models -------------------------------------------------------------------------

    async def window(self, since: float, bucket_s: float,
                     destinations: Sequence[str] = ()) -> WindowRows:
        return await self._db.read(lambda conn: _window(conn, since, bucket_s, destinations))

    async def roll_up(self, now: float, limit: int = rollup.ROLL_UP_BATCH) -> int:
        return await self._db.write(lambda conn: _roll_up(conn, now, limit), slow=True)

    async def forget_rollups(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(Q["rollup_drop"])
            conn.execute(Q["rollup_drop_hours"])

        await self._db.write(run, slow=True)

    async def queues(self, names: Sequence[str]) -> list[QueueRow]:
        return await self._db.read(lambda conn: [_queue(conn, n) for n in names])

    async def recent(self, search: RecentSearch, limit: int = 50) -> list[RecentRow]:
        return await self._db.read(lambda conn: _recent(conn, search, limit))

    async def trace(self, event_id: str) -> list[TraceRow]:
        return await self._db.read(lambda conn: _trace(conn, event_id))


def mark_inserted(conn: sqlite3.Connection, times: Iterable[float],
                  browser_ids: Sequence[str]) -> None:
    """Mark the stored minutes that rows just inserted change: those the rows' times fall
    in, and for browser copies those of every arrival of their event_ids (SQLite writes one
    transaction at a time, so a minute not stored yet will be computed with these rows)."""
    minutes = sorted({rollup.minute_of(t) for t in times})
    conn.execute(Q["mark_inserted"], {"minutes": orjson.dumps(minutes).decode(),
                                      "browser": orjson.dumps(list(browser_ids)).decode()})


def record_notes(conn: sqlite3.Connection, calls: list[NotesCall]) -> list[None]:
    """The ingest log of one or more record_ingest calls, a statement per table."""
    rows = ingest_log_rows(calls)
    for table, insert, prune in ((rows.rejected, "insert_rejection", "prune_rejections"),
                                 (rows.duplicates, "insert_duplicate", "prune_duplicates"),
                                 (rows.notices, "insert_notice", "prune_notices")):
        if table:
            conn.executemany(Q[insert], table)
            conn.execute(Q[prune], (rows.latest - PRUNE_AFTER_S,))
    mark_inserted(conn, [at for at, _channel, _notes in calls], rows.browser_duplicates)
    return [None] * len(calls)


def _window(conn: sqlite3.Connection, since: float, bucket_s: float,
            destinations: Sequence[str]) -> WindowRows:
    conn.execute("BEGIN")  # one snapshot for every count of the page
    try:
        first = {"first": rollup.first_whole_minute(since),
                 "first_hour": rollup.first_whole_hour(since)}
        hours = conn.execute(Q["window_hours"], first).fetchall()
        minutes = conn.execute(Q["window_minutes"], first).fetchall()
        parts = [rollup.decode(blob) for _t, blob in hours + minutes]
        covered = rollup.minutes_of_hours(h for h, _b in hours) + [m for m, _b in minutes]
        parts += [_range(conn, lo, hi) for lo, hi in rollup.uncovered(since, covered)]
        latencies = conn.execute(Q["window_latencies"],
                                 {"since": since, "sample": LATENCY_SAMPLE}).fetchall()
        heads = [(d, *conn.execute(Q["window_queue_head"], {"d": d, "since": since}).fetchone())
                 for d in destinations]
    finally:
        conn.execute("COMMIT")
    return rollup.window_rows(parts, since, bucket_s, latencies, heads)


def _range(conn: sqlite3.Connection, lo: float, hi: float) -> WindowRows:
    """The window queries over [lo, hi): one minute to store, or a part scanned exactly."""
    params = {"lo": lo, "hi": hi, **ID_KEY_PARAMS}
    out = WindowRows()
    for name in rollup.RANGE_FIELDS:
        setattr(out, name, conn.execute(Q[f"window_{name}"], params).fetchall())
    return out


def _roll_up(conn: sqlite3.Connection, now: float, limit: int) -> int:
    stored = [m for (m,) in conn.execute(Q["rollup_stored"]).fetchall()]
    dirty = [m for (m,) in conn.execute(Q["rollup_dirty"]).fetchall()]
    first = conn.execute(Q["rollup_first"]).fetchone()[0]
    todo, oldest = rollup.to_compute(now, stored, dirty, limit, first)
    conn.execute(Q["rollup_forget"], {"oldest": oldest})
    conn.execute(Q["rollup_forget_dirty"], {"oldest": oldest})
    busy = {m for (m,) in conn.execute(Q["rollup_busy"], rollup.span(todo)).fetchall()}
    conn.executemany(Q["rollup_store"], [
        {"minute": m, "now": now, "rows": rollup.encode(_range(conn, *rollup.bounds(m)))
         if m in busy else None} for m in todo])
    conn.executemany(Q["rollup_clean"], [{"minute": m} for m in todo])
    conn.execute(Q["rollup_forget_hours"], {"oldest": oldest // rollup.HOUR_MINUTES})
    for hour in rollup.hours_of(todo):
        whole, blob = rollup.whole_hour(
            conn.execute(Q["rollup_hour"], rollup.hour_bounds(hour)).fetchall())
        conn.execute(Q["rollup_store_hour"] if whole else Q["rollup_drop_hour"],
                     {"hour": hour, "now": now, "rows": blob} if whole else {"hour": hour})
    return len(todo)


def _queue(conn: sqlite3.Connection, name: str) -> QueueRow:
    pending, in_flight, oldest, paused, reason, at = conn.execute(
        Q["queue"], {"d": name}).fetchone()
    return QueueRow(name, pending, in_flight, oldest, bool(paused),
                    reason if paused else None, at if paused else None)


def _recent(conn: sqlite3.Connection, search: RecentSearch, limit: int) -> list[RecentRow]:
    rows = []
    q, narrow = search.q, recent_filters(search, limit)
    for prefix in recent_prefixes(q):
        rows = conn.execute(Q["recent_by_id"], {**prefix, **narrow}).fetchall()
        if rows:
            break
    if not rows:
        rows = conn.execute(Q["recent"], {"name": q, **narrow}).fetchall()
    return [RecentRow(r[0], r[1], r[2], r[3], r[4] or "") for r in rows]


def _trace(conn: sqlite3.Connection, event_id: str) -> list[TraceRow]:
    out = []
    for r in conn.execute(Q["trace"], (event_id,)).fetchall():
        log = [AttemptRow(*a) for a in conn.execute(
            Q["trace_attempts"], (r[0], r[9] - 1.0, r[13] + 1.0, event_id)).fetchall()]
        out.append(TraceRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                            r[11], r[12], log))
    return out
