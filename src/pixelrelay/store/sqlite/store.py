"""SQLiteStore: every storage protocol on one SQLite file (WAL, synchronous=FULL)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pixelrelay.errors import StoreUnavailable
from pixelrelay.store.migrate import pending
from pixelrelay.store.owner import OwnerLock
from pixelrelay.store.queries import queries
from pixelrelay.store.sqlite.diagnostics import SQLiteDiagnostics
from pixelrelay.store.sqlite.operations import SQLiteOperations
from pixelrelay.store.sqlite.outbox import SQLiteOutbox
from pixelrelay.store.sqlite.sessions import SQLiteSessions
from pixelrelay.store.sqlite.writer import Connections, connect

# The writer's page cache (SQLite's default is 2 MiB). Every event inserts into a dozen
# b-trees, two of them at random places (its event_id, its idempotency key): with the
# default, those pages are read back from the OS at each insert once a table outgrows it.
# bench.store_insert: 5-10 % less CPU an event on a fresh database, 18 % once it holds
# half a million events.
WRITER_CACHE_KIB = 32 * 1024


class SQLiteStore(SQLiteOutbox, SQLiteSessions, SQLiteDiagnostics, SQLiteOperations):
    """The Store on SQLite. Only the owner (`serve`, `deliver`) recovers in-flight rows, and
    holds an OS lock beside the database while it runs; a CLI tool (replay, import, report)
    attaches beside it without taking a running worker's batches back."""

    def __init__(self, path: str, *, recover_in_flight: bool = True) -> None:
        self.path = path
        self.recover_in_flight = recover_in_flight
        self._owner = OwnerLock(path) if recover_in_flight and path != ":memory:" else None
        self._db_open: Connections | None = None

    @property
    def _db(self) -> Connections:
        if self._db_open is None:
            raise StoreUnavailable("store is not open")
        return self._db_open

    @property
    def commits(self) -> int:
        """Transactions committed by the writer (group commit is observable in tests)."""
        return 0 if self._db_open is None else self._db_open.commits

    async def open(self) -> None:
        self._db_open = await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> Connections:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self._owner is not None:
            self._owner.acquire()  # before recovery: raises DatabaseInUse naming the owner
        try:
            w = connect(self.path)
            w.execute("PRAGMA journal_mode = WAL")
            w.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            migrate(w)
            if self.recover_in_flight:
                w.execute(queries("sqlite", "outbox")["recover_in_flight"])
            r, quick = connect(self.path), connect(self.path)
            for reader in (r, quick):
                reader.execute("PRAGMA query_only = 1")
            return Connections(w, r, quick)
        except BaseException:
            if self._owner is not None:
                self._owner.release()
            raise

    async def schema_version(self) -> int:
        rows = await self._db.read(
            lambda c: c.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone())
        return int(rows[0])

    async def close(self) -> None:
        db, self._db_open = self._db_open, None
        if db is not None:
            await db.close()
        if self._owner is not None:
            self._owner.release()  # after the last commit: the next owner finds it all


def migrate(conn: sqlite3.Connection) -> int:
    """Run the migrations the database lacks, each in its own transaction; the version.

    The version is read inside each migration's write transaction, so two processes
    starting at once on a new file cannot both run the same migration.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            todo = pending("sqlite", int(version))
            if not todo:
                conn.execute("COMMIT")
                return int(version)
            m = todo[0]
            # executescript would commit first; the script's statements run one by one here.
            for statement in _statements(m.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (m.version,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise


def _statements(script: str) -> list[str]:
    """A migration's statements: complete SQL split at semicolons (sqlite3.complete_statement
    knows about semicolons inside strings and triggers)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                out.append(current.strip())
            current = ""
    if current.strip() and not all(
            part.strip().startswith("--") or not part.strip()
            for part in current.splitlines()):
        out.append(current.strip())
    return out
