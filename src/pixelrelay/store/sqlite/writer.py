"""The SQLite connections: writes group-committed on the event loop's thread (every call
queued meanwhile, a SAVEPOINT each, so concurrent requests share one fsync) with the COMMIT in
a thread of its own, and readers beside them (WAL): one in a worker thread, one for the point
reads of session lookups on the loop's thread."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pixelrelay.errors import StoreUnavailable
from pixelrelay.store import write_groups

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
BulkJob = Callable[[sqlite3.Connection, list[Any]], list[Any]]
MAX_GROUP = 512  # calls per transaction: bounds the latency one commit adds to the first caller
# Rows per transaction, as the calls declare them: a group's statements hold the event loop
# (some 10-20 ms per thousand events), so a burst of batch imports becomes several groups.
MAX_GROUP_ROWS = 2000
BUSY_TIMEOUT_MS = 10_000
# sqlite3 binds int, float and str as they are, but asks every other parameter (None and
# bytes too) for an adapter; an unregistered type costs a failed lookup that formats an
# AttributeError, some 10k instructions an event. Registered (for the whole process), these
# two pass through as themselves: `_NOTHING.get(None)` is None, `bytes(b)` is b.
_NOTHING: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NOTHING.get)
sqlite3.register_adapter(bytes, bytes)


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = FULL")  # a commit survives power loss, not just a crash
    return conn


@dataclass(slots=True)
class _Call:
    fn: Job
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    bulk: BulkJob | None = None
    arg: Any = None
    slow: bool = False
    rows: int = 1

    def resolve(self, value: Any, error: BaseException | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            _resolve(self.future, value, error)
        else:  # queued from another loop's thread (RuntimeError: that loop has closed)
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_resolve, self.future, value, error)


class Connections:
    """Runs functions of a sqlite3.Connection: writes in the next group transaction (durable
    when awaited), reads on the read connection in a worker thread (quick ones on the
    caller's thread, see `read`).

    A group's statements run on the event loop's thread; its COMMIT, which waits for the
    disk, in a thread of its own, so the loop goes on meanwhile and the calls queued then
    make the next group. (The statements ran in a writer thread before: SQLite hands the GIL
    back at every step, and while the loop ran Python the writer waited a switch interval
    to get it again each time, so a 500-event group took 100 ms for 30 ms of work.) A
    `slow` call's group runs whole in that thread, as does one that finds another process
    holding the write lock, so the loop never waits for a scan or for the busy timeout.
    """

    def __init__(self, write: sqlite3.Connection, read: sqlite3.Connection,
                 quick: sqlite3.Connection) -> None:
        self.commits = 0  # transactions committed by the writer (group commit is observable)
        self._wconn = write
        self._rconn = read
        self._rlock = threading.Lock()
        self._quick = quick  # reads on the loop's thread (read(quick=True)); never waits
        self._quick.execute("PRAGMA busy_timeout = 0")  # it runs on a loop: never wait
        self._quick_lock = threading.Lock()
        self._open = True
        # The queue and whether a writer task drains it: calls may come from several loops.
        self._qlock = threading.Lock()
        self._queued: list[_Call] = []
        self._writer: asyncio.Task[None] | None = None
        self._disk = ThreadPoolExecutor(1, thread_name_prefix="pixelrelay-sqlite-commit")

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, bulk: BulkJob | None = None,
                    arg: Any = None, slow: bool = False, rows: int = 1) -> T:
        """Run `fn` in the next group transaction; returns once it is committed.

        With `bulk`, calls queued next to each other with the same `bulk` run as one
        `bulk(conn, [arg, ...])` (one savepoint and one statement per table instead of per
        call); if that fails, each runs alone as `fn`, so one bad call still sinks no other.
        `slow`: maintenance that may scan many rows; its group runs off the event loop.
        `rows`: about how many rows the call writes (MAX_GROUP_ROWS).
        """
        if not self._open:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._qlock:
            self._queued.append(_Call(fn, loop, future, bulk, arg, slow, rows))
        self._start_writer()
        return await future

    async def read(self, fn: Callable[[sqlite3.Connection], T], *, quick: bool = False) -> T:
        """Run `fn` on a read connection, in a worker thread.

        `quick`: a few point reads by index (a session lookup), run on the caller's thread
        instead. In a worker thread, each SQLite step hands the GIL back, and winning it
        again from a busy event loop took a switch interval: drop-in requests, which look
        the visitor's session up for its consent, take 35-40 % less time on the loop's
        thread. A quick read never waits: if its connection is in use (from another loop's
        thread) or SQLite answers busy, it runs in the worker thread after all.
        """
        if quick and self._quick_lock.acquire(blocking=False):
            try:
                if not self._open:
                    raise StoreUnavailable("store is not open")
                return fn(self._quick)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise StoreUnavailable(f"read failed: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"read failed: {exc}") from exc
            finally:
                self._quick_lock.release()

        def run() -> T:
            with self._rlock:  # one sqlite3 connection must not serve two threads at once
                if not self._open:
                    raise StoreUnavailable("store is not open")
                try:
                    return fn(self._rconn)
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"read failed: {exc}") from exc

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        self._open = False  # later calls fail fast; what was queued before is committed
        while (writer := self._writer) is not None:
            if writer.get_loop() is asyncio.get_running_loop():
                await asyncio.wait([writer])
            else:
                await asyncio.sleep(0.01)
        self._disk.shutdown()
        with self._rlock, self._quick_lock:
            self._wconn.close()
            self._rconn.close()
            self._quick.close()

    # -- the writer --------------------------------------------------------------------------

    def _start_writer(self) -> None:
        """On a loop's thread: a task there drains the queue, unless one runs somewhere."""
        with self._qlock:
            if self._writer is None and self._queued:
                self._writer = asyncio.get_running_loop().create_task(
                    self._write_groups(), name="pixelrelay-sqlite-writer")

    async def _write_groups(self) -> None:
        """Commit the queued calls a group at a time until none are left."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                with self._qlock:
                    group = _next_group(self._queued)
                    self._queued = self._queued[len(group):]
                    if not group:
                        self._writer = None
                        return
                try:
                    await self._commit_group(group)
                except Exception as exc:  # the writer must outlive any surprise: callers wait
                    if self._wconn.in_transaction:
                        self._wconn.rollback()
                    for call in group:
                        call.resolve(None, StoreUnavailable(f"writer: {exc!r}"))
        except asyncio.CancelledError:  # this loop is closing: its callers go, others stay
            with self._qlock:
                self._writer = None
                mine = [call for call in self._queued if call.loop is loop]
                self._queued = [call for call in self._queued if call.loop is not loop]
                others = {call.loop for call in self._queued}
            for call in mine:
                call.resolve(None, StoreUnavailable("the store's event loop closed"))
            for other in others:
                with contextlib.suppress(RuntimeError):
                    other.call_soon_threadsafe(self._start_writer)
            raise

    async def _commit_group(self, group: list[_Call]) -> None:
        conn = self._wconn
        ordered = write_groups.runs(group)
        group = [call for run in ordered for call in run]  # the results' order
        results = None
        if not any(call.slow for call in group):
            try:
                results = _run_group(conn, ordered, wait=False)
            except sqlite3.Error as exc:
                _rollback(conn)
                for call in group:
                    call.resolve(None, StoreUnavailable(f"commit failed: {exc}"))
                return
        # The COMMIT (or, for maintenance or while another process writes, the whole group)
        # in the disk thread. Shielded: should this loop close meanwhile, the transaction
        # still ends, and its callers on other loops still hear how.
        job = (self._disk.submit(_run_group_and_commit, conn, ordered) if results is None
               else self._disk.submit(_commit, conn, results))
        try:
            await asyncio.shield(asyncio.wrap_future(job))
        except asyncio.CancelledError:
            job.add_done_callback(functools.partial(self._settle, group))
            raise
        except sqlite3.Error:
            pass  # _settle reads it from the job
        self._settle(group, job)

    def _settle(self, group: list[_Call], job: Future[list[Outcome]]) -> None:
        error = job.exception()
        if error is None:
            self.commits += 1
            for call, (value, failure) in zip(group, job.result(), strict=True):
                call.resolve(value, failure)
            return
        failure = StoreUnavailable(f"commit failed: {error}")
        for call in group:
            call.resolve(None, failure)


Outcome = tuple[Any, BaseException | None]


def _next_group(queued: list[_Call]) -> list[_Call]:
    """The calls at the head of the queue that make one transaction: at least one, then up
    to MAX_GROUP calls and MAX_GROUP_ROWS rows."""
    rows = 0
    for n, call in enumerate(queued[:MAX_GROUP]):
        rows += call.rows
        if n and rows > MAX_GROUP_ROWS:
            return queued[:n]
    return queued[:MAX_GROUP]


def _commit(conn: sqlite3.Connection, results: list[Outcome]) -> list[Outcome]:
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        _rollback(conn)
        raise
    return results


def _run_group_and_commit(conn: sqlite3.Connection, ordered: list[list[_Call]]
                          ) -> list[Outcome]:
    try:
        results = _run_group(conn, ordered, wait=True)
    except sqlite3.Error:
        _rollback(conn)
        raise
    assert results is not None
    return _commit(conn, results)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.rollback()


def _run_group(conn: sqlite3.Connection, ordered: list[list[_Call]], wait: bool
               ) -> list[Outcome] | None:
    """BEGIN IMMEDIATE and the group's calls, run by run. Without `wait`, None (and nothing
    begun) when another connection holds the write lock: its busy timeout would block the
    event loop."""
    if wait:
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            return None
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    results: list[Outcome] = []
    for run in ordered:
        results += _run_calls(conn, run)
    return results


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
