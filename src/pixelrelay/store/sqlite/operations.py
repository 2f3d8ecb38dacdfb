"""The ops commands' domain operations on SQLite: replay's candidates and re-queueing under
the idempotency rule, the gap report's purchases and refused orders."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from pixelrelay.model import DeliveryState
from pixelrelay.store.base import IDEMPOTENCY_WINDOW_S, REPLAYED_NOTE
from pixelrelay.store.queries import queries
from pixelrelay.store.rows import (
    Candidate,
    PurchaseRecord,
    RejectedOrder,
    ReplayFilter,
    Requeue,
)
from pixelrelay.store.sqlite.writer import UsesConnections

Q = queries("sqlite", "operations")


class SQLiteOperations(UsesConnections):
    """The Operations part of SQLiteStore."""


    async def count_replay_candidates(self, f: ReplayFilter) -> int:
        params = _filter(f)
        (n,) = await self._db.read(lambda c: c.execute(Q["replay_count"], params).fetchone())
        return int(n)

    async def replay_candidates(self, f: ReplayFilter, after: int,
                                limit: int) -> list[Candidate]:
        params = {**_filter(f), "after": after, "limit": limit}
        rows = await self._db.read(lambda c: c.execute(Q["replay_page"], params).fetchall())
        return [Candidate(delivery_id=r[0], event_id=r[1], dest_event=r[2],
                          state=DeliveryState(r[3]), delivered_at=r[4], superseded=bool(r[5]),
                          body=bytes(r[6])) for r in rows]

    async def count_requeue_conflicts(self, destination: str, items: Sequence[Requeue],
                                      now: float) -> int:
        cutoff = now - IDEMPOTENCY_WINDOW_S
        return await self._db.read(
            lambda c: sum(_key_taken(c, destination, it, cutoff) for it in items))

    async def requeue(self, destination: str, items: Sequence[Requeue],
                      now: float) -> tuple[int, int]:
        return await self._db.write(lambda c: _requeue(c, destination, items, now), slow=True)

    async def purchase_records(self, destination: str,
                               names: Sequence[str]) -> list[PurchaseRecord]:
        params = {"destination": destination, "names": orjson.dumps(list(names)).decode()}
        rows = await self._db.read(lambda c: c.execute(Q["purchases"], params).fetchall())
        return [_purchase(r) for r in rows]

    async def rejected_orders(self) -> list[RejectedOrder]:
        rows = await self._db.read(lambda c: c.execute(Q["rejected_orders"]).fetchall())
        return [RejectedOrder(*r) for r in rows]


def _filter(f: ReplayFilter) -> dict[str, Any]:
    return {"destination": f.destination,
            "states": orjson.dumps([str(s) for s in f.states]).decode(),
            "since": f.since, "until": f.until, "event": f.event}


def _key_taken(conn: sqlite3.Connection, destination: str, it: Requeue,
               cutoff: float) -> bool:
    """Another delivery holds the (event_id, destination, new name) key within the window:
    the event already went in again under that name, and a second copy would be a repeat."""
    row = conn.execute(Q["key_holder"], (it.event_id, destination, it.dest_event)).fetchone()
    return row is not None and row[0] != it.delivery_id and row[1] > cutoff


def _requeue(conn: sqlite3.Connection, destination: str, items: Sequence[Requeue],
             now: float) -> tuple[int, int]:
    done = taken = 0
    cutoff = now - IDEMPOTENCY_WINDOW_S
    for it in items:
        if it.dest_event != it.old_dest_event:
            # Renamed (a fixed event_map): take the new name's key by insert's own rule, or
            # count it as taken when another delivery holds it within the window.
            if _key_taken(conn, destination, it, cutoff):
                taken += 1
                continue
            conn.execute(Q["drop_key"], (it.event_id, destination, it.dest_event))
        changed = conn.execute(Q["requeue"], {
            "id": it.delivery_id, "old_state": str(it.old_state), "dest_event": it.dest_event,
            "batch_key": it.batch_key, "payload": it.payload, "now": now,
            "note": REPLAYED_NOTE}).rowcount
        if not changed:
            taken += 1  # changed state since it was read
            continue
        conn.execute(Q["move_key"], (it.dest_event, now, it.delivery_id, destination))
        done += 1
    return done, taken


def _purchase(r: Sequence[Any]) -> PurchaseRecord:
    props = orjson.loads(r[11]).get("properties") or {}
    order_id, value = props.get("order_id"), props.get("value")
    return PurchaseRecord(
        event_id=r[0], name=r[1], dest_event=r[2], state=DeliveryState(r[3]), reason=r[4],
        dead_reason=r[5], attempts=r[6], last_code=r[7], last_message=r[8],
        event_time=r[9], received_at=r[10],
        order_id=order_id if isinstance(order_id, str) else None,
        value=float(value) if isinstance(value, int | float) else None)
