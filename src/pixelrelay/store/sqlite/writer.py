"""The SQLite connections: one writer thread that group-commits every call queued meanwhile
(a SAVEPOINT each, so concurrent requests share one fsync), and a reader beside it (WAL)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pixelrelay.errors import StoreUnavailable
from pixelrelay.store import write_groups

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
BulkJob = Callable[[sqlite3.Connection, list[Any]], list[Any]]
MAX_GROUP = 512  # calls per transaction: bounds the latency one commit adds to the first caller


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")  # a commit survives power loss, not just a crash
    return conn


@dataclass(slots=True)
class _Call:
    fn: Job
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    bulk: BulkJob | None = None
    arg: Any = None


class Connections:
    """Runs functions of a sqlite3.Connection: writes in the writer thread's next group
    transaction (durable when awaited), reads on the read connection in a worker thread."""

    def __init__(self, write: sqlite3.Connection, read: sqlite3.Connection) -> None:
        self.commits = 0  # transactions committed by the writer (group commit is observable)
        self._wconn = write
        self._rconn = read
        self._rlock = threading.Lock()
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = threading.Thread(
            target=self._write_loop, name="pixelrelay-sqlite-writer", daemon=True)
        self._writer.start()

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, bulk: BulkJob | None = None,
                    arg: Any = None) -> T:
        """Run `fn` in the writer's next group transaction; returns once it is committed.

        With `bulk`, calls queued next to each other with the same `bulk` run as one
        `bulk(conn, [arg, ...])` (one savepoint and one statement per table instead of per
        call); if that fails, each runs alone as `fn`, so one bad call still sinks no other.
        """
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(fn, loop, future, bulk, arg))
        return await future

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._rlock:  # one sqlite3 connection must not serve two threads at once
                if self._writer is None:
                    raise StoreUnavailable("store is not open")
                try:
                    return fn(self._rconn)
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"read failed: {exc}") from exc

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        writer, self._writer = self._writer, None  # later calls fail fast instead of hanging
        if writer is not None:
            self._calls.put(None)  # the writer finishes what was queued before it, then stops
            await asyncio.to_thread(writer.join)
        with self._rlock:
            self._wconn.close()
            self._rconn.close()

    # -- the writer thread -------------------------------------------------------------------

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
        results: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            ordered = write_groups.runs(group)
            group = [call for run in ordered for call in run]  # the results' order
            for run in ordered:
                results += _run_calls(conn, run)
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


def _run_calls(conn: sqlite3.Connection,
               run: list[_Call]) -> list[tuple[Any, BaseException | None]]:
    bulk = run[0].bulk
    if bulk is not None and len(run) > 1:
        conn.execute("SAVEPOINT call")
        try:
            values = bulk(conn, [c.arg for c in run])
            conn.execute("RELEASE call")
            return [(v, None) for v in values]
        except Exception:  # which call failed? each runs alone below
            conn.execute("ROLLBACK TO call")
            conn.execute("RELEASE call")
    return [_run_in_savepoint(conn, c.fn) for c in run]


def _run_in_savepoint(conn: sqlite3.Connection, fn: Job) -> tuple[Any, BaseException | None]:
    """One call of a group: its failure rolls back to its savepoint and sinks no other."""
    conn.execute("SAVEPOINT call")
    try:
        value = fn(conn)
        conn.execute("RELEASE call")
        return value, None
    except Exception as exc:
        conn.execute("ROLLBACK TO call")
        conn.execute("RELEASE call")
        return None, _as_store_error(exc)


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


class UsesConnections:
    """Base of the SQLiteStore parts: each reaches the store's open connections as `_db`."""

    @property
    def _db(self) -> Connections:
        raise NotImplementedError
