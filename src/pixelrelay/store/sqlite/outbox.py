"""The outbox on SQLite: insert with idempotency and merging, claim by batch key, finish
fenced by the lease token, leases, expiry, retention, pause state, the delivery log, admin
sessions."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from pixelrelay.model import DeliveryState
from pixelrelay.records import record
from pixelrelay.store.base import (
    IDEMPOTENCY_WINDOW_S,
    AttemptRecord,
    Claimed,
    DeliveryView,
    DestinationState,
    Finished,
    IngestLogFor,
    InsertOutcome,
    MergeFn,
    NewEvent,
    Pruned,
)
from pixelrelay.store.codec import encode_event, event_facets
from pixelrelay.store.queries import queries
from pixelrelay.store.rows import notes_of
from pixelrelay.store.sqlite.diagnostics import mark_inserted, record_notes
from pixelrelay.store.sqlite.writer import UsesConnections

Q = queries("sqlite", "outbox")
log = logging.getLogger(__name__)
_FINISH_PARAMS = ("token", "state", "next_attempt_at", "http_status", "code", "message",
                  "request_id", "dead_reason", "retry_streak", "suspect")
_FINAL = {DeliveryState.DELIVERED, DeliveryState.DEAD, DeliveryState.PENDING}


@record
class _Prepared:
    """A NewEvent flattened before it is queued, so the group's transaction only runs SQL."""

    event_row: tuple[Any, ...]  # insert_event columns after id
    event_id: str
    # destination, dest_event, batch_key, state, payload, reason, not_before
    routes: tuple[tuple[str, str, str, str, bytes | None, str | None, float | None], ...]
    merge: MergeFn | None


class SQLiteOutbox(UsesConnections):
    """Outbox, Processes, Destinations, Maintenance and AdminSessions of SQLiteStore."""


    # -- writes --------------------------------------------------------------------------------

    async def insert(self, batch: Sequence[NewEvent], now: float,
                     ingest_log: IngestLogFor | None = None) -> list[InsertOutcome]:
        call = ([_prepare(item) for item in batch], now, ingest_log)
        # Queued inserts run together (insert_and_log); the lambda is the fallback per call.
        return await self._db.write(lambda conn: insert_and_log(conn, [call])[0],
                                    bulk=insert_and_log, arg=call, rows=len(batch))

    async def claim(self, destination: str, limit: int, now: float, lease_s: float,
                    retry_before: float | None = None) -> list[Claimed]:
        token = uuid.uuid4().hex
        params = {"token": token, "lease_expires_at": now + lease_s, "now": now,
                  "destination": destination, "limit": limit,
                  "due_by": now if retry_before is None else math.inf,
                  "retry_before": now if retry_before is None else retry_before}
        rows = await self._db.write(lambda conn: conn.execute(Q["claim"], params).fetchall())
        # RETURNING does not promise the subquery's order; restore "oldest first".
        rows.sort(key=lambda r: (r[7], r[0]))
        return [Claimed(delivery_id=r[0], event_id=r[1], dest_event=r[2], batch_key=r[3],
                        payload=r[4], attempts=r[5], created_at=r[6], lease_token=token,
                        retry_streak=r[8], suspect=bool(r[9]))
                for r in rows]

    async def finish(self, results: Sequence[Finished], attempt: AttemptRecord | None,
                     now: float) -> int:
        """Record outcomes where the lease token still matches.

        A result counts as an attempt (attempts + 1, last_* replaced) when it carries an HTTP
        status or a code, or when `attempt` is given (a request was made, even one that got
        no HTTP answer). Otherwise (a pause, expiry at pickup) only state and message change.
        """
        if not results and attempt is None:
            return 0
        # Results sharing one outcome (usually a whole request) become one UPDATE.
        groups: dict[tuple[Any, ...], list[int]] = {}
        for r in results:
            if r.state not in _FINAL:
                raise ValueError(f"finish cannot set state {r.state}")
            due = None
            if r.state is DeliveryState.PENDING:
                due = now if r.next_attempt_at is None else r.next_attempt_at
            counted = attempt is not None or r.http_status is not None or r.code is not None
            key = (counted, r.lease_token, str(r.state), due, r.http_status, r.code, r.message,
                   r.request_id, r.dead_reason, r.retry_streak, r.suspect)
            groups.setdefault(key, []).append(r.delivery_id)
        log = None if attempt is None else (
            attempt.destination, orjson.dumps(list(attempt.event_ids)).decode(),
            attempt.http_status, attempt.code, attempt.message, attempt.request_id,
            attempt.latency_ms, attempt.outcome, attempt.at)

        def run(conn: sqlite3.Connection) -> int:
            changed = 0
            for (counted, *values), ids in groups.items():
                params = dict(zip(_FINISH_PARAMS, values, strict=True))
                params.update(ids=orjson.dumps(ids).decode(), now=now)
                sql = Q["finish_attempt"] if counted else Q["finish_note"]
                changed += conn.execute(sql, params).rowcount
            if log is not None:
                conn.execute(Q["insert_attempt"], log)
            return changed

        return await self._db.write(run)

    async def reap_leases(self, now: float) -> int:
        return await self._db.write(lambda c: c.execute(Q["reap_leases"], {"now": now}).rowcount)

    async def expire(self, destination: str, accepted_before: float, now: float) -> int:
        params = {"destination": destination, "cutoff": accepted_before, "now": now}
        return await self._db.write(lambda c: c.execute(Q["expire"], params).rowcount,
                                    slow=True)

    async def prune(self, now: float, retention_s: float, limit: int = 1000) -> Pruned:
        params = {"cutoff": now - retention_s, "limit": limit}

        def deliveries(conn: sqlite3.Connection) -> tuple[int, int]:
            rows = conn.execute(Q["prune_pick_deliveries"], params).fetchall()
            conn.executemany(Q["prune_key"], [(r[1], r[2], r[3], r[0]) for r in rows])
            conn.executemany(Q["prune_delivery"], [(r[0],) for r in rows])
            freed = sum(conn.execute(Q["prune_freed_event"], (ref,)).rowcount
                        for ref in sorted({r[4] for r in rows}))
            return len(rows), freed

        # One writer transaction per table, each a small batch: ingest waits milliseconds.
        n_deliveries, freed = await self._db.write(deliveries, slow=True)
        sweep = {**params, "limit": limit - freed}
        swept = await self._db.write(lambda c: c.execute(Q["prune_events"], sweep).rowcount,
                                     slow=True)
        return Pruned(deliveries=n_deliveries, events=freed + swept,
                      attempts=await self._db.write(
                          lambda c: c.execute(Q["prune_attempts"], params).rowcount, slow=True))

    async def set_destination(self, state: DestinationState) -> None:
        params = (state.name, int(state.paused), state.reason, state.token_fingerprint,
                  state.updated_at)
        await self._db.write(lambda c: c.execute(Q["set_destination"], params))

    async def open_admin_session(self, id_hash: str, now: float, expires_at: float) -> None:
        params = {"id_hash": id_hash, "now": now, "expires_at": expires_at}

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(Q["admin_sessions_prune"], params)  # sign-ins are rare: prune here
            conn.execute(Q["admin_session_open"], params)

        await self._db.write(run)

    async def close_admin_session(self, id_hash: str) -> None:
        await self._db.write(lambda c: c.execute(Q["admin_session_close"], {"id_hash": id_hash}))

    # -- reads ---------------------------------------------------------------------------------

    async def wait_for_work(self, destinations: Sequence[str], timeout: float) -> None:
        # No cross-process signal on SQLite: another process's rows are found by polling.
        await asyncio.sleep(timeout)

    async def heartbeat(self, process_id: str, role: str, now: float, ttl_s: float) -> int:
        params = {"id": process_id, "role": role, "now": now, "cutoff": now - ttl_s}

        def run(conn: sqlite3.Connection) -> int:
            conn.execute(Q["forget_silent"], params)
            conn.execute(Q["heartbeat"], params)
            return int(conn.execute(Q["count_alive"], params).fetchone()[0])

        return await self._db.write(run)

    async def leave(self, process_id: str) -> None:
        await self._db.write(lambda c: c.execute(Q["leave"], {"id": process_id}))

    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        return await self._db.read(lambda conn: conn.execute(sql, params).fetchall())

    async def next_due(self, destination: str) -> float | None:
        rows = await self._read(Q["next_due"], (destination,))
        return rows[0][0] if rows else None

    async def admin_session_valid(self, id_hash: str, now: float) -> bool:
        params = {"id_hash": id_hash, "now": now}
        return bool(await self._read(Q["admin_session_valid"], params))

    async def get_destination(self, name: str) -> DestinationState | None:
        rows = await self._read(Q["get_destination"], (name,))
        if not rows:
            return None
        n, paused, reason, fingerprint, updated_at = rows[0]
        return DestinationState(name=n, paused=bool(paused), reason=reason,
                                token_fingerprint=fingerprint, updated_at=updated_at)

    async def deliveries(self, event_id: str) -> list[DeliveryView]:
        rows = await self._read(Q["deliveries_by_event"], (event_id,))
        return [DeliveryView(destination=r[0], event_id=r[1], dest_event=r[2],
                             state=DeliveryState(r[3]), attempts=r[4], last_http_status=r[5],
                             last_code=r[6], last_message=r[7], last_request_id=r[8],
                             dead_reason=r[9], reason=r[10], created_at=r[11], updated_at=r[12],
                             next_attempt_at=r[13]) for r in rows]


def _prepare(item: NewEvent) -> _Prepared:
    e = item.event
    return _Prepared(
        event_row=(e.event_id, e.name, str(e.source), e.event_time, e.received_at,
                   e.session_id, e.order_source, encode_event(e), *event_facets(e)),
        event_id=e.event_id,
        routes=tuple((r.destination, r.dest_event, r.batch_key, str(r.state), r.payload, r.reason,
                      r.not_before) for r in item.routes),
        merge=item.merge,
    )


class _Rows:
    """The event and delivery rows of a group's insert calls, written a table at a time."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []
        self.times: list[float] = []  # what mark_inserted marks
        self.browser: list[str] = []

    def write(self, cur: sqlite3.Cursor) -> None:
        if self.events:
            cur.executemany(Q["insert_event"], self.events)
        if self.deliveries:
            cur.executemany(Q["insert_delivery"], self.deliveries)
        self.events, self.deliveries = [], []


def insert_and_log(conn: sqlite3.Connection,
                   calls: list[tuple[list[_Prepared], float, IngestLogFor | None]]
                   ) -> list[list[InsertOutcome]]:
    """insert_many, then the ingest log of the calls that bring one, in a savepoint of its
    own: a failure there loses the log, never the events."""
    out = insert_many(conn, [(prepared, now) for prepared, now, _log in calls])
    try:
        notes = notes_of(calls, out)
        if notes:
            conn.execute("SAVEPOINT ingest_log")
            try:
                record_notes(conn, notes)
            except BaseException:
                conn.execute("ROLLBACK TO ingest_log")
                raise
            finally:
                conn.execute("RELEASE ingest_log")
    except Exception as exc:
        log.warning("could not record the ingest log of %d requests: %s", len(calls), exc)
    return out


def insert_many(conn: sqlite3.Connection, calls: list[tuple[list[_Prepared], float]]
                ) -> list[list[InsertOutcome]]:
    """Runs in the writer: the insert calls of a group, with the outcomes of running them one
    after the other (a key taken by an earlier call is a duplicate of it, and a later copy
    merges into an earlier call's pending first copy, but not into its own call's).
    Idempotency per route, then the rows of what is new, in bulk."""
    cur = conn.cursor()
    claim_key = Q["claim_idempotency"]
    # The writer holds the write lock, so ids past max(id) are ours to assign; knowing them
    # lets both tables be written with executemany and idempotency point at its delivery.
    event_ref = cur.execute(Q["last_event_ref"]).fetchone()[0]
    delivery_id = cur.execute(Q["last_delivery_id"]).fetchone()[0]
    rows, earlier = _Rows(), _Rows()  # this call's rows; those of calls before it
    out: list[list[InsertOutcome]] = []
    for batch, now in calls:
        cutoff = now - IDEMPOTENCY_WINDOW_S
        outcomes: list[InsertOutcome] = []
        for item in batch:
            new = []
            for route in item.routes:
                params = (item.event_id, route[0], route[1], now, delivery_id + 1, cutoff)
                if cur.execute(claim_key, params).rowcount == 1:
                    delivery_id += 1
                    new.append((delivery_id, route))
            if item.routes and not new:
                if item.merge is not None:
                    earlier.write(cur)  # an earlier call's first copy must be there to merge
                merged = item.merge is not None and _merge(cur, item, now)
                outcomes.append(InsertOutcome.MERGED if merged else InsertOutcome.DUPLICATE)
                continue
            outcomes.append(InsertOutcome.ACCEPTED)
            event_ref += 1
            rows.events.append((event_ref, *item.event_row))
            # received_at is the 6th column, channel the third from last
            rows.times.append(item.event_row[4])
            if item.event_row[-3] == "browser":
                rows.browser.append(item.event_id)
            for did, (dest, dest_event, batch_key, state, payload, reason, hold) in new:
                due = (hold or now) if state == "pending" else None
                rows.deliveries.append((did, event_ref, dest, dest_event, item.event_id,
                                        batch_key, state, payload, reason, due, now, now))
        if rows.events:
            earlier.times.append(now)
        earlier.events += rows.events
        earlier.deliveries += rows.deliveries
        earlier.times += rows.times
        earlier.browser += rows.browser
        rows = _Rows()
        out.append(outcomes)
    earlier.write(cur)
    if earlier.times:
        mark_inserted(conn, earlier.times, earlier.browser)
    return out


def _merge(cur: sqlite3.Cursor, item: _Prepared, now: float) -> bool:
    """Fold a duplicate into the first copy while its deliveries are all still pending."""
    assert item.merge is not None
    rows = [cur.execute(Q["pending_copy"], (item.event_id, dest, dest_event)).fetchone()
            for dest, dest_event, *_ in item.routes]
    found = [r for r in rows if r is not None]
    if not found or len({r[1] for r in found}) != 1:
        return False  # sent or in flight already (or copies of two events): a duplicate
    merged = item.merge(bytes(found[0][2]))
    if merged is None:
        return False
    cur.execute(Q["update_event_body"], (merged.body, found[0][1]))
    for delivery_id, _ref, _body, destination in found:
        route = merged.routes.get(destination)
        if route is None:
            continue
        due = now if merged.release else None
        cur.execute(Q["update_pending_copy"], {
            "id": delivery_id, "state": str(route.state), "payload": route.payload,
            "reason": route.reason, "due": due, "now": now})
    return True


