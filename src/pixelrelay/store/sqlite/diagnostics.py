"""The ingest log and the diagnostics read models on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from pixelrelay.store.queries import queries
from pixelrelay.store.rows import (
    LATENCY_SAMPLE,
    PRUNE_AFTER_S,
    AttemptRow,
    IngestNote,
    LaterCopy,
    QueueRow,
    RecentRow,
    RecentSearch,
    RejectionRow,
    TraceRow,
    WindowRows,
    recent_filters,
    recent_prefixes,
)
from pixelrelay.store.sqlite.writer import UsesConnections

Q = queries("sqlite", "diagnostics")
DEDUP_LOOKBACK_S = 48 * 3600.0  # browser copies usually arrive before the server's


class SQLiteDiagnostics(UsesConnections):
    """The IngestLog and ReadModels parts of SQLiteStore."""


    # -- the ingest log ----------------------------------------------------------------------

    async def record_ingest(self, now: float, channel: str,
                            notes: Sequence[IngestNote]) -> None:
        if notes:
            await self._db.write(lambda conn: _record_notes(conn, now, channel, notes))

    async def record_collect_refusal(self, now: float, reason: str,
                                     origin: str | None) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(Q["insert_refusal"], (now, reason, origin))
            conn.execute(Q["prune_refusals"], (now - PRUNE_AFTER_S,))

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

    async def window(self, since: float, bucket_s: float) -> WindowRows:
        return await self._db.read(lambda conn: _window(conn, since, bucket_s))

    async def queues(self, names: Sequence[str]) -> list[QueueRow]:
        return await self._db.read(lambda conn: [_queue(conn, n) for n in names])

    async def recent(self, search: RecentSearch, limit: int = 50) -> list[RecentRow]:
        return await self._db.read(lambda conn: _recent(conn, search, limit))

    async def trace(self, event_id: str) -> list[TraceRow]:
        return await self._db.read(lambda conn: _trace(conn, event_id))


def _record_notes(conn: sqlite3.Connection, at: float, channel: str,
                  notes: Sequence[IngestNote]) -> None:
    rejected = [(at, channel, n.event[:128], n.field[:128], n.reason, n.problems,
                 n.event_id[:256] or None, n.order_id[:128] or None,
                 orjson.dumps(n.sample).decode()) for n in notes if n.kind == "rejected"]
    dupes = [(at, channel, n.event[:128], n.event_id[:256], int(n.merged)) for n in notes
             if n.kind == "duplicate"]
    kept = [(at, channel, n.event[:128], n.field[:128], n.kind) for n in notes
            if n.kind not in ("rejected", "duplicate")]
    for rows, insert, prune in ((rejected, "insert_rejection", "prune_rejections"),
                                (dupes, "insert_duplicate", "prune_duplicates"),
                                (kept, "insert_notice", "prune_notices")):
        if rows:
            conn.executemany(Q[insert], rows)
            conn.execute(Q[prune], (at - PRUNE_AFTER_S,))


def _window(conn: sqlite3.Connection, since: float, bucket_s: float) -> WindowRows:
    one = (since,)
    trend = {"since": since, "bucket": bucket_s}

    def rows(name: str, params: Sequence[Any] | dict[str, Any] = one) -> list[Any]:
        return conn.execute(Q[name], params).fetchall()

    return WindowRows(
        accepted=rows("window_accepted"),
        duplicates=rows("window_duplicates"),
        ingest_rejections=rows("window_ingest_rejections"),
        deliveries=rows("window_deliveries"),
        dead=rows("window_dead"),
        coverage=rows("window_coverage"),
        notices=rows("window_notices"),
        collect_refusals=rows("window_collect_refusals"),
        dedup=rows("window_dedup", {"since": since, "lookback": since - DEDUP_LOOKBACK_S}),
        enrichment=rows("window_enrichment"),
        latencies=rows("window_latencies", {"since": since, "sample": LATENCY_SAMPLE}),
        trend_received=rows("window_trend_received", trend),
        trend_delivered=rows("window_trend_delivered", trend),
    )


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
