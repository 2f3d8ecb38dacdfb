"""The outbox on PostgreSQL: insert with idempotency and merging (group-committed, with
NOTIFY), claim by batch key with SKIP LOCKED, finish fenced by the lease token, leases,
expiry, retention, pause state, processes, the delivery log and admin sessions."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

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
from pixelrelay.store.postgres.diagnostics import record_notes
from pixelrelay.store.postgres.writer import Conn, UsesConnections, unstorable
from pixelrelay.store.queries import queries
from pixelrelay.store.rows import notes_of

Q = queries("postgres", "outbox")
T = TypeVar("T")
log = logging.getLogger(__name__)
_FINISH_PARAMS = ("token", "state", "next_attempt_at", "http_status", "code", "message",
                  "request_id", "dead_reason", "retry_streak", "suspect")
_FINAL = {DeliveryState.DELIVERED, DeliveryState.DEAD, DeliveryState.PENDING}
# destination, dest_event, batch_key, state, payload (its JSON text), reason, not_before
RouteRow = tuple[str, str, str, str, str | None, str | None, float | None]


@record
class _Prepared:
    """A NewEvent flattened before it is queued, so the writer only runs SQL."""

    event_row: tuple[Any, ...]  # insert_group's event columns after id; the body a Fragment
    event_id: str
    routes: tuple[RouteRow, ...]
    merge: MergeFn | None


class PostgresOutbox(UsesConnections):
    """Outbox, Processes, Destinations, Maintenance and AdminSessions of PostgresStore."""

    # -- writes --------------------------------------------------------------------------------

    async def insert(self, batch: Sequence[NewEvent], now: float,
                     ingest_log: IngestLogFor | None = None) -> list[InsertOutcome]:
        call = ([_prepare(item) for item in batch], now, ingest_log)

        async def alone(conn: Conn) -> list[InsertOutcome]:
            return (await insert_and_log(conn, [call]))[0]

        # Queued inserts run together (insert_and_log); `alone` is the fallback per call.
        return await self._db.write(alone, bulk=insert_and_log, arg=call)

    async def claim(self, destination: str, limit: int, now: float, lease_s: float,
                    retry_before: float | None = None) -> list[Claimed]:
        token = uuid.uuid4().hex
        params = {"token": token, "lease_expires_at": now + lease_s, "now": now,
                  "destination": destination, "limit": limit,
                  "due_by": now if retry_before is None else math.inf,
                  "retry_before": now if retry_before is None else retry_before}

        async def run(conn: Conn) -> list[tuple[Any, ...]]:
            return await (await conn.execute(Q["claim"], params)).fetchall()

        rows = await self._db.transaction(run)
        # RETURNING does not promise the subquery's order; restore "oldest first".
        rows.sort(key=lambda r: (r[7], r[0]))
        return [Claimed(delivery_id=r[0], event_id=r[1], dest_event=r[2], batch_key=r[3],
                        payload=bytes(r[4]), attempts=r[5], created_at=r[6],
                        lease_token=token, retry_streak=r[8], suspect=r[9])
                for r in rows]

    async def finish(self, results: Sequence[Finished], attempt: AttemptRecord | None,
                     now: float) -> int:
        """Record outcomes where the lease token still matches (see SQLiteOutbox.finish)."""
        if not results and attempt is None:
            return 0
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
            attempt.destination, list(attempt.event_ids), attempt.http_status, attempt.code,
            attempt.message, attempt.request_id, attempt.latency_ms, attempt.outcome,
            attempt.at)

        async def run(conn: Conn) -> int:
            changed = 0
            for (counted, *values), ids in groups.items():
                params = dict(zip(_FINISH_PARAMS, values, strict=True))
                params.update(ids=ids, now=now)
                sql = Q["finish_attempt"] if counted else Q["finish_note"]
                changed += (await conn.execute(sql, params)).rowcount
            if log is not None:
                await conn.execute(Q["insert_attempt"], log)
            return changed

        return await self._db.transaction(run)

    async def reap_leases(self, now: float) -> int:
        return await self._db.execute(Q["reap_leases"], {"now": now})

    async def expire(self, destination: str, accepted_before: float, now: float) -> int:
        params = {"destination": destination, "cutoff": accepted_before, "now": now}
        return await self._db.execute(Q["expire"], params)

    async def prune(self, now: float, retention_s: float, limit: int = 1000) -> Pruned:
        params = {"cutoff": now - retention_s, "limit": limit}

        async def deliveries(conn: Conn) -> tuple[int, int]:
            refs = [r[0] for r in await (await conn.execute(Q["prune_deliveries"],
                                                            params)).fetchall()]
            if not refs:
                return 0, 0
            freed = await conn.execute(Q["prune_freed_events"], {"refs": sorted(set(refs))})
            return len(refs), freed.rowcount

        n_deliveries, freed = await self._db.transaction(deliveries)
        swept = await self._db.execute(Q["prune_events"], {**params, "limit": limit - freed})
        return Pruned(deliveries=n_deliveries, events=freed + swept,
                      attempts=await self._db.execute(Q["prune_attempts"], params))

    async def set_destination(self, state: DestinationState) -> None:
        await self._db.execute(Q["set_destination"], (
            state.name, state.paused, state.reason, state.token_fingerprint, state.updated_at))

    async def open_admin_session(self, id_hash: str, now: float, expires_at: float) -> None:
        params = {"id_hash": id_hash, "now": now, "expires_at": expires_at}

        async def run(conn: Conn) -> None:
            await conn.execute(Q["admin_sessions_prune"], params)  # sign-ins are rare
            await conn.execute(Q["admin_session_open"], params)

        await self._db.transaction(run)

    async def close_admin_session(self, id_hash: str) -> None:
        await self._db.execute(Q["admin_session_close"], {"id_hash": id_hash})

    async def heartbeat(self, process_id: str, role: str, now: float, ttl_s: float) -> int:
        params = {"id": process_id, "role": role, "now": now, "cutoff": now - ttl_s}

        async def run(conn: Conn) -> int:
            await conn.execute(Q["forget_silent"], params)
            await conn.execute(Q["heartbeat"], params)
            row = await (await conn.execute(Q["count_alive"], params)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._db.transaction(run)

    async def leave(self, process_id: str) -> None:
        await self._db.execute(Q["leave"], {"id": process_id})

    # -- reads ---------------------------------------------------------------------------------

    async def wait_for_work(self, destinations: Sequence[str], timeout: float) -> None:
        await self._db.listener.wait(destinations, timeout)

    async def next_due(self, destination: str) -> float | None:
        rows = await self._db.fetch(Q["next_due"], (destination,))
        return rows[0][0] if rows else None

    async def admin_session_valid(self, id_hash: str, now: float) -> bool:
        params = {"id_hash": id_hash, "now": now}
        return bool(await self._db.fetch(Q["admin_session_valid"], params))

    async def get_destination(self, name: str) -> DestinationState | None:
        rows = await self._db.fetch(Q["get_destination"], (name,))
        if not rows:
            return None
        n, paused, reason, fingerprint, updated_at = rows[0]
        return DestinationState(name=n, paused=bool(paused), reason=reason,
                                token_fingerprint=fingerprint, updated_at=updated_at)

    async def deliveries(self, event_id: str) -> list[DeliveryView]:
        if unstorable(event_id):
            return []
        rows = await self._db.fetch(Q["deliveries_by_event"], (event_id,))
        return [DeliveryView(destination=r[0], event_id=r[1], dest_event=r[2],
                             state=DeliveryState(r[3]), attempts=r[4], last_http_status=r[5],
                             last_code=r[6], last_message=r[7], last_request_id=r[8],
                             dead_reason=r[9], reason=r[10], created_at=r[11], updated_at=r[12],
                             next_attempt_at=r[13]) for r in rows]


def _prepare(item: NewEvent) -> _Prepared:
    e = item.event
    return _Prepared(
        event_row=(e.event_id, e.name, str(e.source), e.event_time, e.received_at,
                   e.session_id, e.order_source, orjson.Fragment(encode_event(e)),
                   *event_facets(e)),
        event_id=e.event_id,
        routes=tuple((r.destination, r.dest_event, r.batch_key, str(r.state),
                      None if r.payload is None else r.payload.decode(), r.reason, r.not_before)
                     for r in item.routes),
        merge=item.merge,
    )


Key = tuple[str, str, str]  # event_id, destination, dest_event


class NotTogether(Exception):
    """These calls cannot share statements; the writer runs them one by one instead."""


async def insert_and_log(conn: Conn, calls: list[tuple[list[_Prepared], float, IngestLogFor | None]]
                         ) -> list[list[InsertOutcome]]:
    """insert_many, then the ingest log of the calls that bring one, in a savepoint of its
    own: a failure there loses the log, never the events."""
    out = await insert_many(conn, [(prepared, now) for prepared, now, _log in calls])
    try:
        notes = notes_of(calls, out)
        if notes:
            await in_savepoint(conn, "ingest_log", record_notes, notes)
    except Exception as exc:
        log.warning("could not record the ingest log of %d requests: %s", len(calls), exc)
    return out


async def insert_many(conn: Conn, calls: list[tuple[list[_Prepared], float]]
                      ) -> list[list[InsertOutcome]]:
    """The insert calls of one writer group in one statement (insert_group): the outcomes
    are those of running the calls one after the other, as SQLite's writer does (a key taken
    by an earlier call is a duplicate of it, a later copy merges into an earlier call's
    pending first copy, but not into its own call's)."""
    items = [(c, item, now) for c, (batch, now) in enumerate(calls) for item in batch]
    # The first route to offer a key is the one that may take it. Slots number the routes
    # that offer a key (1-based: the statement's delivery ids are a PostgreSQL array).
    keys: dict[Key, tuple[int, float, int]] = {}  # -> slot, accepted_at, call
    route_slots: list[list[int | None]] = []
    events: list[tuple[Any, ...]] = []
    routes: list[tuple[Any, ...]] = []
    for c, item, now in items:
        slots: list[int | None] = []
        for route in item.routes:
            dest, dest_event, batch_key, state, payload, reason, hold = route
            key = (item.event_id, dest, dest_event)
            if key in keys:
                if keys[key][1] <= now - IDEMPOTENCY_WINDOW_S:
                    # The later call re-accepts it: one statement cannot upsert a key twice.
                    raise NotTogether("a key is accepted twice in one group")
                slots.append(None)
                continue
            slot = len(keys) + 1
            keys[key] = (slot, now, c)
            slots.append(slot)
            due = (hold or now) if state == "pending" else None
            routes.append((slot, len(events) + 1, dest, dest_event, item.event_id, batch_key,
                           state, payload, reason, due, now))
        route_slots.append(slots)
        if not item.routes or any(s is not None for s in slots):  # may be accepted
            events.append((len(events) + 1, *item.event_row, not item.routes))
    taken: set[int] = set()
    if events:
        ordered = sorted(keys.items())  # one lock order for every process
        cur = await conn.execute(Q["insert_group"], {
            "events": len(events), "deliveries": len(keys),
            "keys": _json([(*key, at, slot) for key, (slot, at, _call) in ordered]),
            "event_rows": _json(events), "routes": _json(routes),
            "window": IDEMPOTENCY_WINDOW_S})
        row = await cur.fetchone()
        assert row is not None
        taken = set(row[0])

    outcomes: list[list[InsertOutcome]] = [[] for _ in calls]
    merges: list[tuple[int, int, _Prepared, float, set[tuple[str, str]]]] = []
    for (c, item, now), slots in zip(items, route_slots, strict=True):
        if item.routes and not any(s is not None and s in taken for s in slots):
            outcomes[c].append(InsertOutcome.DUPLICATE)
            if item.merge is not None:
                own = {(k[1], k[2]) for k, (slot, _, holder) in keys.items()
                       if k[0] == item.event_id and holder == c and slot in taken}
                merges.append((c, len(outcomes[c]) - 1, item, now, own))
            continue
        outcomes[c].append(InsertOutcome.ACCEPTED)
    woken: set[str] = set()  # insert_group woke the destinations of its new rows
    for c, pos, item, now, own in merges:  # after the inserts: earlier calls' copies exist
        released = await _merge(conn, item, now, skip=own)
        if released is not None:
            outcomes[c][pos] = InsertOutcome.MERGED
            woken |= released
    if woken:
        await conn.execute(Q["notify"], {"destinations": sorted(woken)})
    return outcomes


async def in_savepoint(conn: Conn, name: str, fn: Callable[[Conn, T], Awaitable[object]],
                       arg: T) -> None:
    """`fn(conn, arg)` in a savepoint of the transaction under way, its statements sent
    together (pipeline mode, one round trip); on failure they are rolled back and the
    error raised, the transaction carries on."""
    try:
        async with conn.pipeline():
            await conn.execute(f"SAVEPOINT {name}")
            await fn(conn, arg)
            await conn.execute(f"RELEASE SAVEPOINT {name}")
    except BaseException:
        await conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
        await conn.execute(f"RELEASE SAVEPOINT {name}")
        raise


def _json(rows: list[tuple[Any, ...]]) -> str:
    """Rows as one JSON array of arrays, for INSERT ... SELECT FROM jsonb_array_elements."""
    return orjson.dumps(rows).decode()


async def _merge(conn: Conn, item: _Prepared, now: float,
                 skip: set[tuple[str, str]]) -> set[str] | None:
    """Fold a duplicate into the first copy while its deliveries are all still pending; the
    destinations it made due now, or None when it stays a duplicate. `skip`: routes whose
    first copy is in the same insert call (not yet stored there, as in SQLite)."""
    assert item.merge is not None
    found = []
    for dest, dest_event, *_ in item.routes:
        if (dest, dest_event) in skip:
            continue
        cur = await conn.execute(Q["pending_copy"], (item.event_id, dest, dest_event))
        row = await cur.fetchone()
        if row is not None:
            found.append(row)
    if not found or len({r[1] for r in found}) != 1:
        return None  # sent or in flight already (or copies of two events): a duplicate
    merged = item.merge(found[0][2].encode())
    if merged is None:
        return None
    await conn.execute(Q["update_event_body"], (merged.body, found[0][1]))
    released: set[str] = set()
    for delivery_id, _ref, _body, destination in found:
        route = merged.routes.get(destination)
        if route is None:
            continue
        await conn.execute(Q["update_pending_copy"], {
            "id": delivery_id, "state": str(route.state), "payload": route.payload,
            "reason": route.reason, "due": now if merged.release else None, "now": now})
        if merged.release and route.state == "pending":
            released.add(destination)
    return released
