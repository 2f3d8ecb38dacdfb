"""The SQL of the ops commands, run through SQLiteStore's public read/write hooks."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pixelrelay.config import Settings
from pixelrelay.model import DeliveryState
from pixelrelay.ops import OpsError
from pixelrelay.ops.window import Window
from pixelrelay.store import SQLiteStore, open_store
from pixelrelay.store.base import IDEMPOTENCY_WINDOW_S

# Rows re-queued by replay say so until their next attempt replaces the message.
REPLAYED_NOTE = "re-queued by pixelrelay replay"


async def open_sqlite(settings: Settings) -> SQLiteStore:
    """The configured store, opened; the ops commands speak SQL to SQLite only (for now)."""
    store = open_store(settings.storage.url, recover_in_flight=False)
    if not isinstance(store, SQLiteStore):
        raise OpsError("storage.url", "this command supports SQLite storage only")
    await store.open()
    return store


# -- replay ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReplayFilter:
    destination: str
    states: tuple[DeliveryState, ...]
    window: Window  # on events.received_at: when the gateway accepted the event
    event: str | None  # incoming or destination event name


@dataclass(frozen=True, slots=True)
class Candidate:
    """A finished delivery that replay may put back in the queue."""

    delivery_id: int
    event_id: str
    dest_event: str
    state: DeliveryState
    delivered_at: float | None
    superseded: bool  # a later copy of the same (event_id, destination, name) holds the key
    body: bytes  # the stored, hashed event (store/codec.py)


_CANDIDATE_WHERE = """
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
  LEFT JOIN idempotency AS i
    ON i.event_id = d.event_id AND i.destination = d.destination AND i.dest_event = d.dest_event
 WHERE d.destination = :destination
   AND d.state IN (SELECT value FROM json_each(:states))
   AND (:since IS NULL OR e.received_at >= :since)
   AND (:until IS NULL OR e.received_at < :until)
   AND (:event IS NULL OR e.name = :event OR d.dest_event = :event)
"""
_COUNT = "SELECT count(*)" + _CANDIDATE_WHERE
_PAGE = ("SELECT d.id, d.event_id, d.dest_event, d.state, d.delivered_at,"
         " coalesce(i.delivery_id, d.id) != d.id, e.body" + _CANDIDATE_WHERE
         + " AND d.id > :after ORDER BY d.id LIMIT :limit")


def _filter_params(f: ReplayFilter) -> dict[str, Any]:
    return {"destination": f.destination, "states": orjson.dumps([str(s) for s in f.states])
            .decode(), "since": f.window.since, "until": f.window.until, "event": f.event}


def count_candidates(conn: sqlite3.Connection, f: ReplayFilter) -> int:
    (n,) = conn.execute(_COUNT, _filter_params(f)).fetchone()
    return int(n)


def candidates_page(conn: sqlite3.Connection, f: ReplayFilter, after: int,
                    limit: int) -> list[Candidate]:
    """Keyset pagination by delivery id, so a large replay never holds every row at once."""
    rows = conn.execute(_PAGE, {**_filter_params(f), "after": after, "limit": limit}).fetchall()
    return [Candidate(delivery_id=r[0], event_id=r[1], dest_event=r[2],
                      state=DeliveryState(r[3]), delivered_at=r[4], superseded=bool(r[5]),
                      body=bytes(r[6])) for r in rows]


@dataclass(frozen=True, slots=True)
class Requeue:
    """One delivery to send again, with the payload the destination's current config builds."""

    delivery_id: int
    event_id: str
    old_state: DeliveryState
    old_dest_event: str
    dest_event: str
    batch_key: str
    payload: bytes


_REQUEUE = """
UPDATE deliveries
   SET state = 'pending', dest_event = :dest_event, batch_key = :batch_key, payload = :payload,
       reason = NULL, attempts = 0, next_attempt_at = :now, lease_token = NULL,
       lease_expires_at = NULL, created_at = :now, updated_at = :now, delivered_at = NULL,
       last_http_status = NULL, last_code = NULL, last_message = :note,
       last_request_id = NULL, dead_reason = NULL
 WHERE id = :id AND state = :old_state
"""


_KEY_HOLDER = ("SELECT delivery_id, accepted_at FROM idempotency"
               " WHERE event_id = ? AND destination = ? AND dest_event = ?")


def _name_taken(conn: sqlite3.Connection, destination: str, it: Requeue,
                cutoff: float) -> tuple[bool, bool]:
    """(another delivery holds the new name's key within 48 h, a stale key row exists)."""
    if it.dest_event == it.old_dest_event:
        return False, False
    row = conn.execute(_KEY_HOLDER, (it.event_id, destination, it.dest_event)).fetchone()
    if row is None:
        return False, False
    return row[0] != it.delivery_id and row[1] > cutoff, True


def count_taken(conn: sqlite3.Connection, destination: str, items: Sequence[Requeue],
                now: float) -> int:
    """What requeue would skip as already queued under the new name (for a dry run)."""
    cutoff = now - IDEMPOTENCY_WINDOW_S
    return sum(_name_taken(conn, destination, it, cutoff)[0] for it in items)


def requeue(conn: sqlite3.Connection, destination: str, items: Sequence[Requeue],
            now: float) -> tuple[int, int]:
    """Runs in the writer transaction; returns (re-queued, skipped as already queued).

    created_at becomes now because the worker gives up on rows older than its 48 h retry
    window, counted from created_at; the accept time stays in events.received_at.
    """
    done = taken = 0
    cutoff = now - IDEMPOTENCY_WINDOW_S
    for it in items:
        taken_now, stale = _name_taken(conn, destination, it, cutoff)
        if taken_now:
            taken += 1  # the event already went in again under the new name
            continue
        if stale:
            conn.execute("DELETE FROM idempotency WHERE event_id = ? AND destination = ?"
                         " AND dest_event = ?", (it.event_id, destination, it.dest_event))
        changed = conn.execute(_REQUEUE, {
            "id": it.delivery_id, "old_state": str(it.old_state), "dest_event": it.dest_event,
            "batch_key": it.batch_key, "payload": it.payload, "now": now,
            "note": REPLAYED_NOTE}).rowcount
        if not changed:
            taken += 1  # changed state since it was read
            continue
        # The key follows the delivery (its name may have changed) and restarts the 48 h window,
        # so the same event arriving again now is a duplicate, as it is for TikTok.
        conn.execute("UPDATE idempotency SET dest_event = ?, accepted_at = ?"
                     " WHERE delivery_id = ? AND destination = ?",
                     (it.dest_event, now, it.delivery_id, destination))
        done += 1
    return done, taken


# -- gap report --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    """One delivery of a purchase event, with what the order matching needs from the event."""

    event_id: str
    name: str
    dest_event: str
    state: DeliveryState
    reason: str | None
    dead_reason: str | None
    attempts: int
    last_code: int | None
    last_message: str | None
    event_time: int
    received_at: float
    order_id: str | None  # properties.order_id as stored
    value: float | None


_PURCHASES = """
SELECT d.event_id, e.name, d.dest_event, d.state, d.reason, d.dead_reason, d.attempts,
       d.last_code, d.last_message, e.event_time, e.received_at, e.body
  FROM deliveries AS d
  JOIN events AS e ON e.id = d.event_ref
 WHERE d.destination = :destination
   AND (e.name IN (SELECT value FROM json_each(:names))
        OR d.dest_event IN (SELECT value FROM json_each(:names)))
 ORDER BY d.id
"""


def purchase_records(conn: sqlite3.Connection, destination: str,
                     names: Sequence[str]) -> list[PurchaseRecord]:
    out: list[PurchaseRecord] = []
    params = {"destination": destination, "names": orjson.dumps(list(names)).decode()}
    for r in conn.execute(_PURCHASES, params):
        props = orjson.loads(r[11]).get("properties") or {}
        order_id, value = props.get("order_id"), props.get("value")
        out.append(PurchaseRecord(
            event_id=r[0], name=r[1], dest_event=r[2], state=DeliveryState(r[3]), reason=r[4],
            dead_reason=r[5], attempts=r[6], last_code=r[7], last_message=r[8],
            event_time=r[9], received_at=r[10],
            order_id=order_id if isinstance(order_id, str) else None,
            value=float(value) if isinstance(value, int | float) else None))
    return out


@dataclass(frozen=True, slots=True)
class RejectedOrder:
    """An event refused at ingest that named an order: what the gap report explains."""

    order_id: str
    event: str  # the incoming name
    field: str
    reason: str
    at: float


_REJECTED_ORDERS = """
SELECT order_id, event, field, reason, at FROM ingest_rejections
 WHERE order_id IS NOT NULL ORDER BY at
"""


def rejected_orders(conn: sqlite3.Connection) -> list[RejectedOrder]:
    return [RejectedOrder(*r) for r in conn.execute(_REJECTED_ORDERS)]
