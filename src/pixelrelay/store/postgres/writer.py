"""The PostgreSQL connections: a pool for claims, finishes and reads (each its own short
transaction), a group writer in front of one connection that commits every insert queued
meanwhile in one transaction (a SAVEPOINT each), and a listener for NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from pixelrelay.errors import StoreUnavailable
from pixelrelay.store import write_groups

log = logging.getLogger("pixelrelay.store")

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Job = Callable[[Conn], Awaitable[Any]]
# Runs several queued calls' arguments at once; returns one result per argument.
BulkJob = Callable[[Conn, list[Any]], Awaitable[list[Any]]]
MAX_GROUP = 512  # calls per transaction: bounds the latency one commit adds to the first caller
POOL_MAX = 8  # connections per process beside the writer and the listener
CONNECT_TIMEOUT_S = 10.0
RETRIES = 3  # a call that lost a deadlock (or a serialization race) runs again this often
CHANNEL = "pixelrelay_work"  # NOTIFY channel; the payload is the destination
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
# Every query here is short: JIT compiling one costs more than it saves (120 ms against
# 0.1 ms for retention's sweep at a million events; docs/postgres.md).
SESSION_SETUP = "SET jit = off"
IDLE = TransactionStatus.IDLE


async def configure(conn: Conn) -> None:
    """Session settings of every connection the store opens."""
    await conn.execute(SESSION_SETUP)


async def connect(conninfo: str) -> Conn:
    conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True,
                                                 connect_timeout=int(CONNECT_TIMEOUT_S))
    await configure(conn)
    return conn


def unstorable(*values: str | None) -> bool:
    """PostgreSQL text cannot hold U+0000, so nothing stored equals a value with one: a
    lookup by it finds nothing (as on SQLite) instead of failing the query."""
    return any(v is not None and "\x00" in v for v in values)


def as_store_error(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, psycopg.Error):
        return StoreUnavailable(f"{what} failed: {exc}")
    return exc


@dataclass(slots=True)
class _Call:
    fn: Job
    future: asyncio.Future[Any]
    bulk: BulkJob | None = None
    arg: Any = None


class Connections:
    """Runs async functions of a psycopg connection: `write` in the group writer's next
    transaction (durable when awaited), `transaction` and `read` on a pooled connection."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.commits = 0  # group transactions committed (group commit is observable)
        self.pool = AsyncConnectionPool(conninfo, min_size=1, max_size=POOL_MAX, open=False,
                                        kwargs={"autocommit": True}, configure=configure,
                                        timeout=CONNECT_TIMEOUT_S, name="pixelrelay")
        self._calls: asyncio.Queue[_Call | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._wconn: Conn | None = None
        self._listener: Listener | None = None

    async def open(self) -> None:
        try:
            await self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:
            await self.pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        self._writer = asyncio.create_task(self._write_loop(), name="pixelrelay-pg-writer")
        self._listener = Listener(self.conninfo)

    async def close(self) -> None:
        writer, self._writer = self._writer, None  # later calls fail fast instead of hanging
        if writer is not None:
            self._calls.put_nowait(None)  # the writer finishes what was queued, then stops
            await writer
        if self._listener is not None:
            await self._listener.close()
        if self._wconn is not None:
            await self._wconn.close()
        await self.pool.close()

    @property
    def listener(self) -> Listener:
        if self._listener is None:
            raise StoreUnavailable("store is not open")
        return self._listener

    async def write(self, fn: Callable[[Conn], Awaitable[T]], *, bulk: BulkJob | None = None,
                    arg: Any = None) -> T:
        """Run `fn` in the group writer's next transaction; returns once it is committed.

        With `bulk`, calls queued next to each other with the same `bulk` run as one
        `bulk(conn, [arg, ...])` (a statement per table instead of per call); if that fails,
        each runs alone as `fn`, so one bad call still sinks no other.
        """
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put_nowait(_Call(fn, future, bulk, arg))
        return await future

    async def transaction(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `fn` in a transaction of its own on a pooled connection (retried on deadlock)."""
        for attempt in range(RETRIES):
            try:
                async with self._connection() as conn, conn.transaction():
                    return await fn(conn)
            except _RETRYABLE as exc:
                if attempt == RETRIES - 1:
                    raise StoreUnavailable(f"write failed: {exc}") from exc
            except psycopg.Error as exc:
                raise StoreUnavailable(f"write failed: {exc}") from exc
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `fn` on a pooled connection in autocommit (one snapshot per statement)."""
        try:
            async with self._connection() as conn:
                return await fn(conn)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"read failed: {exc}") from exc

    async def fetch(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                    ) -> list[tuple[Any, ...]]:
        async def run(conn: Conn) -> list[tuple[Any, ...]]:
            return await (await conn.execute(sql, params)).fetchall()

        return await self.read(run)

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                      ) -> int:
        """One statement in its own transaction; the rows it changed."""
        async def run(conn: Conn) -> int:
            return (await conn.execute(sql, params)).rowcount

        return await self.transaction(run)

    def _connection(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        return self.pool.connection()  # PoolTimeout is a psycopg.Error: StoreUnavailable

    # -- the group writer --------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            first = await self._calls.get()
            if first is None:
                return
            group, stopping = [first], False
            while len(group) < MAX_GROUP and not self._calls.empty():
                nxt = self._calls.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
            try:
                await self._commit_group(group)
            except BaseException as exc:  # the writer must outlive any surprise, or callers hang
                for call in group:
                    _resolve(call.future, None, StoreUnavailable(f"writer: {exc!r}"))
                if isinstance(exc, asyncio.CancelledError):
                    raise
            if stopping:
                return

    async def _writer_connection(self) -> Conn:
        if self._wconn is None or self._wconn.closed or self._wconn.broken:
            if self._wconn is not None:
                await self._wconn.close()
            self._wconn = await connect(self.conninfo)
        return self._wconn

    async def _commit_group(self, group: list[_Call]) -> None:
        results: list[tuple[Any, BaseException | None]] = []
        try:
            conn = await self._writer_connection()
            ordered = write_groups.runs(group)
            group = [call for run in ordered for call in run]  # the results' order
            try:
                results = await _run_together(conn, ordered)
                self.commits += 1
            except Exception:
                if conn.broken or conn.closed:
                    raise  # the COMMIT may have happened: no second try, callers are told
                results = await self._run_apart(conn, ordered)
        except psycopg.Error as exc:
            failure = StoreUnavailable(f"commit failed: {exc}")
            results = [(None, failure)] * len(group)
        for call, (value, error) in zip(group, results, strict=True):
            _resolve(call.future, value, error)

    async def _run_apart(self, conn: Conn, ordered: list[list[_Call]]
                         ) -> list[tuple[Any, BaseException | None]]:
        """After _run_together failed (and rolled back): each run, and within a failing run
        each call, in a savepoint of its own, so one bad call sinks no other."""
        if len(ordered) == 1 and len(ordered[0]) == 1:  # alone: its own transaction
            value, error = await _run_alone(conn, ordered[0][0].fn)
            self.commits += error is None
            return [(value, error)]
        results: list[tuple[Any, BaseException | None]] = []
        async with conn.transaction():
            for run in ordered:
                results += await _run_calls(conn, run)
        self.commits += 1
        return results


async def _run_together(conn: Conn, ordered: list[list[_Call]]
                        ) -> list[tuple[Any, BaseException | None]]:
    """A group's calls in one transaction, their statements pipelined: BEGIN travels with
    the first statement and COMMIT alone, so a group of inserts costs two round trips. Any
    failure rolls the whole transaction back and raises (the writer then runs them apart)."""
    results: list[tuple[Any, BaseException | None]] = []
    try:
        async with conn.pipeline():
            await conn.execute("BEGIN")
            for run in ordered:
                bulk = run[0].bulk
                if bulk is not None:
                    values = await bulk(conn, [c.arg for c in run])
                else:
                    values = [await c.fn(conn) for c in run]
                results += [(v, None) for v in values]
            await conn.execute("COMMIT")
    except BaseException:
        if not conn.broken and not conn.closed and conn.info.transaction_status != IDLE:
            try:
                await conn.execute("ROLLBACK")
            except psycopg.Error:
                await conn.close()  # the next group connects again
        raise
    return results


async def _run_alone(conn: Conn, fn: Job) -> tuple[Any, BaseException | None]:
    """The only call of a group, in a transaction of its own (retried on a lost deadlock)."""
    for attempt in range(RETRIES):
        try:
            async with conn.transaction():
                return await fn(conn), None
        except _RETRYABLE as exc:
            if attempt == RETRIES - 1:
                return None, StoreUnavailable(f"write failed: {exc}")
        except Exception as exc:
            return None, as_store_error(exc, "write")
    raise AssertionError("unreachable")


async def _run_calls(conn: Conn, run: list[_Call]) -> list[tuple[Any, BaseException | None]]:
    bulk = run[0].bulk
    if bulk is not None and len(run) > 1:
        try:
            async with conn.transaction():  # a SAVEPOINT: a failure leaves nothing behind
                values = await bulk(conn, [c.arg for c in run])
            return [(v, None) for v in values]
        except Exception:  # which call failed? each runs alone below
            pass
    return [await _run_in_savepoint(conn, c.fn) for c in run]


async def _run_in_savepoint(conn: Conn, fn: Job) -> tuple[Any, BaseException | None]:
    """One call of a group: its failure rolls back to its savepoint and sinks no other call."""
    for attempt in range(RETRIES):
        try:
            async with conn.transaction():  # nested: a SAVEPOINT
                return await fn(conn), None
        except _RETRYABLE as exc:
            if attempt == RETRIES - 1:
                return None, StoreUnavailable(f"write failed: {exc}")
        except Exception as exc:
            return None, as_store_error(exc, "write")
    raise AssertionError("unreachable")


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled by its caller; the work is committed regardless
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Listener:
    """LISTEN on a dedicated connection; wakes the waiters of the notified destination.

    Connected on the first wait. A lost connection is retried on the next wait; meanwhile
    waits simply run to their timeout, so callers fall back to polling.
    """

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event = asyncio.Event()

    def _ensure(self) -> None:
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._listen(), name="pixelrelay-pg-listen")

    async def wait(self, destinations: Sequence[str], timeout: float) -> None:
        self._ensure()
        woken = asyncio.Event()
        for d in destinations:
            self._waiters.setdefault(d, set()).add(woken)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout)
        finally:
            for d in destinations:
                waiting = self._waiters.get(d)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        del self._waiters[d]

    async def listening(self, timeout: float) -> bool:
        """Wait until LISTEN is in place (tests: a NOTIFY sent after this is not missed)."""
        self._ensure()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def _listen(self) -> None:
        try:
            async with await connect(self.conninfo) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                self._ready.set()
                async for note in conn.notifies():
                    for woken in self._waiters.get(note.payload, ()):
                        woken.set()
        except psycopg.Error as exc:
            log.warning("LISTEN connection lost (%s); waiting workers poll meanwhile", exc)
        finally:
            self._ready.clear()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class UsesConnections:
    """Base of the PostgresStore parts: each reaches the store's open connections as `_db`."""

    @property
    def _db(self) -> Connections:
        raise NotImplementedError
