"""The ingest log and the diagnostics read models on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from pixelrelay.store import rollup
from pixelrelay.store.codec import ID_KEY_PARAMS
from pixelrelay.store.postgres.writer import Conn, UsesConnections, unstorable
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

Q = queries("postgres", "diagnostics")


class PostgresDiagnostics(UsesConnections):
    """The IngestLog and ReadModels parts of PostgresStore."""

    # -- the ingest log ----------------------------------------------------------------------

    async def record_ingest(self, now: float, channel: str,
                            notes: Sequence[IngestNote]) -> None:
        if notes:
            call = (now, channel, notes)

            async def alone(conn: Conn) -> list[None]:
                return await record_notes(conn, [call])

            # In the group writer, so a request's log shares its events' commit rhythm (a
            # transaction of its own per request cost one commit each); queued logs run
            # together (record_notes), `alone` is the fallback per call.
            await self._db.write(alone, bulk=record_notes, arg=call)

    async def record_collect_refusal(self, now: float, reason: str,
                                     origin: str | None) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(Q["insert_refusal"], (now, reason, origin))
            await conn.execute(Q["prune_refusals"], (now - PRUNE_AFTER_S,))

        await self._db.transaction(run)

    async def rejections(self, event_id: str | None,
                         order_id: str | None) -> list[RejectionRow]:
        if unstorable(event_id, order_id):
            return []
        params = {"event_id": event_id or None, "order_id": order_id or None}
        rows = await self._db.fetch(Q["rejections"], params)
        return [RejectionRow(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]

    async def later_copies(self, event_id: str) -> list[LaterCopy]:
        if unstorable(event_id):
            return []
        rows = await self._db.fetch(Q["later_copies"], (event_id,))
        return [LaterCopy(r[0], r[1], bool(r[2])) for r in rows]

    # -- read models -------------------------------------------------------------------------

    async def window(self, since: float, bucket_s: float,
                     destinations: Sequence[str] = ()) -> WindowRows:
        async def run(conn: Conn) -> WindowRows:
            # One snapshot for every count of the page, as SQLite's single read gives.
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return await _window(conn, since, bucket_s, destinations)

        return await self._db.read(run)

    async def roll_up(self, now: float, limit: int = rollup.ROLL_UP_BATCH) -> int:
        async def run(conn: Conn) -> int:
            return await _roll_up(conn, now, limit)

        return await self._db.transaction(run)

    async def forget_rollups(self) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(Q["rollup_drop"])
            await conn.execute(Q["rollup_drop_hours"])

        await self._db.transaction(run)

    async def queues(self, names: Sequence[str]) -> list[QueueRow]:
        async def run(conn: Conn) -> list[QueueRow]:
            return [await _queue(conn, n) for n in names]

        return await self._db.read(run)

    async def recent(self, search: RecentSearch, limit: int = 50) -> list[RecentRow]:
        if unstorable(search.q, search.state, search.destination, search.channel):
            return []

        async def run(conn: Conn) -> list[RecentRow]:
            return await _recent(conn, search, limit)

        return await self._db.read(run)

    async def trace(self, event_id: str) -> list[TraceRow]:
        if unstorable(event_id):
            return []

        async def run(conn: Conn) -> list[TraceRow]:
            return await _trace(conn, event_id)

        return await self._db.read(run)


async def record_notes(conn: Conn, calls: list[NotesCall]) -> list[None]:
    """The ingest log of one or more record_ingest calls, a statement per table."""
    rows = ingest_log_rows(calls)
    tables = (
        (rows.rejected, "insert_rejections", "prune_rejections",
         ("at", "channel", "event", "field", "reason", "problems", "event_id", "order_id",
          "sample")),
        (rows.duplicates, "insert_duplicates", "prune_duplicates",
         ("at", "channel", "event", "event_id", "merged")),
        (rows.notices, "insert_notices", "prune_notices",
         ("at", "channel", "event", "field", "kind")))
    for table, insert, prune, names in tables:
        if table:
            columns = zip(*table, strict=True)
            await conn.execute(Q[insert], {n: list(c) for n, c in zip(names, columns,
                                                                      strict=True)})
            await conn.execute(Q[prune], (rows.latest - PRUNE_AFTER_S,))
    return [None] * len(calls)


async def _window(conn: Conn, since: float, bucket_s: float,
                  destinations: Sequence[str]) -> WindowRows:
    first = {"first": rollup.first_whole_minute(since),
             "first_hour": rollup.first_whole_hour(since)}
    hours = await (await conn.execute(Q["window_hours"], first)).fetchall()
    minutes = await (await conn.execute(Q["window_minutes"], first)).fetchall()
    parts = [rollup.decode(blob) for _t, blob in hours + minutes]
    covered = rollup.minutes_of_hours(h for h, _b in hours) + [m for m, _b in minutes]
    parts += [await _range(conn, lo, hi) for lo, hi in rollup.uncovered(since, covered)]
    latencies = await (await conn.execute(Q["window_latencies"], {
        "since": since, "sample": LATENCY_SAMPLE})).fetchall()
    heads: list[rollup.QueueHead] = []
    for d in destinations:
        row = await (await conn.execute(Q["window_queue_head"], {"d": d, "since": since})
                     ).fetchone()
        assert row is not None
        heads.append((d, *row))
    return rollup.window_rows(parts, since, bucket_s, latencies, heads)


async def _range(conn: Conn, lo: float, hi: float) -> WindowRows:
    """The window queries over [lo, hi): one minute to store, or a part scanned exactly."""
    params = {"lo": lo, "hi": hi, **ID_KEY_PARAMS}
    out = WindowRows()
    for name in rollup.RANGE_FIELDS:
        setattr(out, name, await (await conn.execute(Q[f"window_{name}"], params)).fetchall())
    return out


async def _roll_up(conn: Conn, now: float, limit: int) -> int:
    row = await (await conn.execute(Q["rollup_lock"])).fetchone()
    if row is None or not row[0]:
        return 0  # another process is at it
    stored = [m for (m,) in await (await conn.execute(Q["rollup_stored"])).fetchall()]
    marks: dict[int, list[int]] = {}
    for mark, minute in await (await conn.execute(Q["rollup_dirty"])).fetchall():
        marks.setdefault(minute, []).append(mark)
    first = (await (await conn.execute(Q["rollup_first"])).fetchone() or (None,))[0]
    todo, oldest = rollup.to_compute(now, stored, marks, limit, first)
    await conn.execute(Q["rollup_forget"], {"oldest": oldest})
    await conn.execute(Q["rollup_forget_dirty"], {"oldest": oldest})
    busy = {m for (m,) in await (await conn.execute(Q["rollup_busy"], rollup.span(todo))
                                 ).fetchall()}
    stored_rows = [{"minute": m, "now": now,
                    "rows": rollup.encode(await _range(conn, *rollup.bounds(m)))
                    if m in busy else None} for m in todo]
    async with conn.cursor() as cur:
        await cur.executemany(Q["rollup_store"], stored_rows)
    await conn.execute(Q["rollup_clean"], {"ids": [i for m in todo for i in marks.get(m, ())]})
    await conn.execute(Q["rollup_forget_hours"], {"oldest": oldest // rollup.HOUR_MINUTES})
    for hour in rollup.hours_of(todo):
        found = await (await conn.execute(Q["rollup_hour"], rollup.hour_bounds(hour))).fetchall()
        whole, blob = rollup.whole_hour(found)
        await conn.execute(Q["rollup_store_hour"] if whole else Q["rollup_drop_hour"],
                           {"hour": hour, "now": now, "rows": blob} if whole else {"hour": hour})
    return len(todo)


async def _queue(conn: Conn, name: str) -> QueueRow:
    row = await (await conn.execute(Q["queue"], {"d": name})).fetchone()
    assert row is not None
    pending, in_flight, oldest, paused, reason, at = row
    return QueueRow(name, pending, in_flight, oldest, bool(paused),
                    reason if paused else None, at if paused else None)


async def _recent(conn: Conn, search: RecentSearch, limit: int) -> list[RecentRow]:
    rows: list[Any] = []
    q, narrow = search.q, recent_filters(search, limit)
    for prefix in recent_prefixes(q):
        cur = await conn.execute(Q["recent_by_id"], {**prefix, **narrow})
        rows = await cur.fetchall()
        if rows:
            break
    if not rows:
        rows = await (await conn.execute(Q["recent"], {"name": q, **narrow})).fetchall()
    return [RecentRow(r[0], r[1], r[2], r[3], r[4] or "") for r in rows]


async def _trace(conn: Conn, event_id: str) -> list[TraceRow]:
    out = []
    for r in await (await conn.execute(Q["trace"], (event_id,))).fetchall():
        cur = await conn.execute(Q["trace_attempts"], (r[0], r[9] - 1.0, r[13] + 1.0, event_id))
        log = [AttemptRow(*a) for a in await cur.fetchall()]
        payload = None if r[11] is None else bytes(r[11])
        out.append(TraceRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                            payload, r[12].encode(), log))
    return out
