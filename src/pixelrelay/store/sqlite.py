"""SQLiteStore: the outbox on one SQLite file (WAL, synchronous=FULL) with group commit."""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

from pixelrelay.errors import StoreUnavailable
from pixelrelay.model import DeliveryState
from pixelrelay.store.base import (
    IDEMPOTENCY_WINDOW_S,
    AttemptRecord,
    Claimed,
    DeliveryView,
    DestinationState,
    Finished,
    InsertOutcome,
    MergeFn,
    NewEvent,
    QueueStats,
)
from pixelrelay.store.codec import encode_event
from pixelrelay.store.owner import OwnerLock

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
_SQL = resources.files("pixelrelay.store") / "sql"
MIGRATIONS = (  # append only; index + 1 = schema version
    "sqlite_001_initial.sql",
    "sqlite_002_sessions.sql",
    "sqlite_003_diagnostics.sql",
    "sqlite_006_ingest_notices.sql",
    "sqlite_007_session_consent.sql",
    "sqlite_008_rejection_samples.sql",
    "sqlite_005_admin_sessions.sql",
    "sqlite_004_retry.sql",  # numbered when planned; appended, as the position is the version
)
MAX_GROUP = 512  # calls per transaction: bounds the latency one commit adds to the first caller
_FINISH_PARAMS = ("token", "state", "next_attempt_at", "http_status", "code", "message",
                  "request_id", "dead_reason")
_FINAL = {DeliveryState.DELIVERED, DeliveryState.DEAD, DeliveryState.PENDING}


def _load_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` sections into {x: sql}."""
    queries: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line.startswith("-- name:"):
            name = line.split(":", 1)[1].strip()
            queries[name] = ""
        elif name is not None:
            queries[name] += line + "\n"
    return {k: v.strip() for k, v in queries.items()}


Q = _load_queries((_SQL / "sqlite_queries.sql").read_text(encoding="utf-8"))


@dataclass(slots=True)
class _Call:
    fn: Job
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A NewEvent flattened in the caller's thread, so the writer only runs SQL."""

    event_row: tuple[Any, ...]  # insert_event columns after id
    event_id: str
    # destination, dest_event, batch_key, state, payload, reason, not_before
    routes: tuple[tuple[str, str, str, str, bytes | None, str | None, float | None], ...]
    merge: MergeFn | None


class SQLiteStore:
    """The Store on SQLite. One writer thread owns the write connection and commits every
    call queued meanwhile in one transaction (a SAVEPOINT each), so concurrent requests share
    one fsync; reads go through a second connection, which WAL lets run beside the writer.
    """

    def __init__(self, path: str, *, recover_in_flight: bool = True) -> None:
        self.path = path
        # Only the serving process owns in-flight rows. A CLI tool (replay, import, report)
        # attaching to a live database must not hand a running worker's batches back out.
        # The owner holds an OS lock, so a second owner cannot take the first one's batches.
        self.recover_in_flight = recover_in_flight
        self._owner = OwnerLock(path) if recover_in_flight and path != ":memory:" else None
        self.commits = 0  # transactions committed by the writer (group commit is observable)
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._rlock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)
        self._writer = threading.Thread(target=self._write_loop, name="pixelrelay-sqlite-writer",
                                        daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA synchronous = FULL")  # a commit survives power loss, not just a crash
        return conn

    def _open_sync(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self._owner is not None:
            self._owner.acquire()  # before recovery: raises DatabaseInUse naming the owner
        try:
            self._open_connections()
        except BaseException:
            if self._owner is not None:
                self._owner.release()
            raise

    def _open_connections(self) -> None:
        w = self._connect()
        w.execute("PRAGMA journal_mode = WAL")
        w.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        (version,) = w.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        for number, name in enumerate(MIGRATIONS, start=1):
            if number > version:
                script = (_SQL / name).read_text(encoding="utf-8")
                w.executescript(f"BEGIN IMMEDIATE;\n{script}\n"
                                f"INSERT INTO schema_version (version) VALUES ({number});\nCOMMIT;")
        if self.recover_in_flight:
            w.execute(Q["recover_in_flight"])
        self._wconn = w
        self._rconn = self._connect()
        self._rconn.execute("PRAGMA query_only = 1")

    async def close(self) -> None:
        writer, self._writer = self._writer, None  # later calls fail fast instead of hanging
        if writer is not None:
            self._calls.put(None)  # the writer finishes what was queued before it, then stops
            await asyncio.to_thread(writer.join)
        for conn in (self._wconn, self._rconn):
            if conn is not None:
                conn.close()
        self._wconn = self._rconn = None
        if self._owner is not None:
            self._owner.release()  # after the last commit: the next owner finds it all

    # -- the writer ----------------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(fn, loop, future))
        return await future

    def _write_loop(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                return
            group, stopping = [first], False
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._calls.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
            try:
                self._commit_group(group)
            except BaseException as exc:  # the writer must outlive any surprise, or callers hang
                for call in group:
                    with contextlib.suppress(RuntimeError):
                        call.loop.call_soon_threadsafe(
                            _resolve, call.future, None, StoreUnavailable(f"writer: {exc!r}"))
            if stopping:
                return

    def _commit_group(self, group: list[_Call]) -> None:
        conn = self._wconn
        assert conn is not None
        results: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for call in group:
                conn.execute("SAVEPOINT call")
                try:
                    value = call.fn(conn)
                    conn.execute("RELEASE call")
                    results.append((value, None))
                except Exception as exc:  # one failing call must not sink the others
                    conn.execute("ROLLBACK TO call")
                    conn.execute("RELEASE call")
                    results.append((None, _as_store_error(exc)))
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            failure = StoreUnavailable(f"commit failed: {exc}")
            results = [(None, failure)] * len(group)
        for call, (value, error) in zip(group, results, strict=True):
            # RuntimeError: the caller's loop has closed, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                call.loop.call_soon_threadsafe(_resolve, call.future, value, error)

    # -- writes --------------------------------------------------------------------------------

    async def insert(self, batch: Sequence[NewEvent], now: float) -> list[InsertOutcome]:
        prepared = [_prepare(item) for item in batch]
        return await self._write(lambda conn: _insert(conn, prepared, now))

    async def claim(self, destination: str, limit: int, now: float, lease_s: float,
                    retry_before: float | None = None) -> list[Claimed]:
        token = uuid.uuid4().hex
        params = {"token": token, "lease_expires_at": now + lease_s, "now": now,
                  "destination": destination, "limit": limit,
                  "due_by": now if retry_before is None else math.inf,
                  "retry_before": now if retry_before is None else retry_before}
        rows = await self._write(lambda conn: conn.execute(Q["claim"], params).fetchall())
        # RETURNING does not promise the subquery's order; restore "oldest first".
        rows.sort(key=lambda r: (r[7], r[0]))
        return [Claimed(delivery_id=r[0], event_id=r[1], dest_event=r[2], batch_key=r[3],
                        payload=r[4], attempts=r[5], created_at=r[6], lease_token=token)
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
                   r.request_id, r.dead_reason)
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

        return await self._write(run)

    async def reap_leases(self, now: float) -> int:
        return await self._write(lambda c: c.execute(Q["reap_leases"], {"now": now}).rowcount)

    async def expire(self, destination: str, accepted_before: float, now: float) -> int:
        params = {"destination": destination, "cutoff": accepted_before, "now": now}
        return await self._write(lambda c: c.execute(Q["expire"], params).rowcount)

    async def set_destination(self, state: DestinationState) -> None:
        params = (state.name, int(state.paused), state.reason, state.token_fingerprint,
                  state.updated_at)
        await self._write(lambda c: c.execute(Q["set_destination"], params))

    async def open_admin_session(self, id_hash: str, now: float, expires_at: float) -> None:
        params = {"id_hash": id_hash, "now": now, "expires_at": expires_at}

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(Q["admin_sessions_prune"], params)  # sign-ins are rare: prune here
            conn.execute(Q["admin_session_open"], params)

        await self._write(run)

    async def close_admin_session(self, id_hash: str) -> None:
        await self._write(lambda c: c.execute(Q["admin_session_close"], {"id_hash": id_hash}))

    # -- extension points: feature stores (sessions, diagnostics) run their SQL through these --

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside the writer's next (group-committed) transaction; durable on return."""
        return await self._write(fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the read connection in a worker thread."""

        def run() -> T:
            with self._rlock:
                if self._rconn is None:
                    raise StoreUnavailable("store is not open")
                try:
                    return fn(self._rconn)
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"read failed: {exc}") from exc

        return await asyncio.to_thread(run)

    # -- reads ---------------------------------------------------------------------------------

    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        def run() -> list[Any]:
            with self._rlock:  # one sqlite3 connection must not serve two threads at once
                if self._rconn is None:
                    raise StoreUnavailable("store is not open")
                try:
                    return self._rconn.execute(sql, params).fetchall()
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"read failed: {exc}") from exc

        return await asyncio.to_thread(run)

    async def next_due(self, destination: str) -> float | None:
        rows = await self._read(Q["next_due"], (destination,))
        return rows[0][0] if rows else None

    async def queue_stats(self, destination: str) -> QueueStats:
        ((pending, in_flight, oldest),) = await self._read(Q["queue_stats"], (destination,) * 3)
        return QueueStats(pending=pending, in_flight=in_flight, oldest_pending_at=oldest)

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
                   e.session_id, e.order_source, encode_event(e)),
        event_id=e.event_id,
        routes=tuple((r.destination, r.dest_event, r.batch_key, str(r.state), r.payload, r.reason,
                      r.not_before) for r in item.routes),
        merge=item.merge,
    )


def _insert(conn: sqlite3.Connection, batch: list[_Prepared],
            now: float) -> list[InsertOutcome]:
    """Runs in the writer: idempotency per route, then the rows of what is new, in bulk."""
    cutoff = now - IDEMPOTENCY_WINDOW_S
    cur = conn.cursor()
    claim_key = Q["claim_idempotency"]
    # The writer holds the write lock, so ids past max(id) are ours to assign; knowing them
    # lets both tables be written with executemany and idempotency point at its delivery.
    event_ref = cur.execute(Q["last_event_ref"]).fetchone()[0]
    delivery_id = cur.execute(Q["last_delivery_id"]).fetchone()[0]
    outcomes: list[InsertOutcome] = []
    events: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    for item in batch:
        new = []
        for route in item.routes:
            params = (item.event_id, route[0], route[1], now, delivery_id + 1, cutoff)
            if cur.execute(claim_key, params).rowcount == 1:
                delivery_id += 1
                new.append((delivery_id, route))
        if item.routes and not new:
            merged = item.merge is not None and _merge(cur, item, now)
            outcomes.append(InsertOutcome.MERGED if merged else InsertOutcome.DUPLICATE)
            continue
        outcomes.append(InsertOutcome.ACCEPTED)
        event_ref += 1
        events.append((event_ref, *item.event_row))
        for did, (dest, dest_event, batch_key, state, payload, reason, hold) in new:
            due = (hold or now) if state == "pending" else None
            deliveries.append((did, event_ref, dest, dest_event, item.event_id, batch_key,
                               state, payload, reason, due, now, now))
    if events:
        cur.executemany(Q["insert_event"], events)
    if deliveries:
        cur.executemany(Q["insert_delivery"], deliveries)
    return outcomes


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


def _as_store_error(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):
        return StoreUnavailable(f"write failed: {exc}")
    return exc


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled by its caller; the work is committed regardless
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
