"""PostgresStore: every storage protocol on one PostgreSQL database, shared by any number of
processes (API and delivery, on one machine or several)."""

from __future__ import annotations

import psycopg

from pixelrelay.errors import StoreUnavailable
from pixelrelay.store.migrate import pending
from pixelrelay.store.postgres.diagnostics import PostgresDiagnostics
from pixelrelay.store.postgres.operations import PostgresOperations
from pixelrelay.store.postgres.outbox import PostgresOutbox
from pixelrelay.store.postgres.sessions import PostgresSessions
from pixelrelay.store.postgres.writer import Conn, Connections

# Migrations of concurrent starters run one after the other (per schema).
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('pixelrelay:' || current_schema()))"


class PostgresStore(PostgresOutbox, PostgresSessions, PostgresDiagnostics, PostgresOperations):
    """The Store on PostgreSQL.

    Unlike SQLite, opening never returns in-flight rows to pending: many processes share the
    database, and a row in flight may belong to a live worker elsewhere. A dead worker's rows
    come back through their lease alone (`reap_leases`, which any delivery process runs),
    so nothing here needs to know which process owned them. `recover_in_flight` is accepted
    for the same signature as SQLiteStore and ignored.
    """

    def __init__(self, url: str, *, recover_in_flight: bool = True) -> None:
        self.url = url
        self.recover_in_flight = recover_in_flight
        self._db_open: Connections | None = None

    @property
    def _db(self) -> Connections:
        if self._db_open is None:
            raise StoreUnavailable("store is not open")
        return self._db_open

    @property
    def commits(self) -> int:
        """Group transactions committed by the writer (group commit is observable in tests)."""
        return 0 if self._db_open is None else self._db_open.commits

    async def open(self) -> None:
        db = Connections(self.url)
        await db.open()
        try:
            async with db.pool.connection() as conn:
                await migrate(conn)
        except BaseException:
            await db.close()
            raise
        self._db_open = db

    async def schema_version(self) -> int:
        ((version,),) = await self._db.fetch(
            "SELECT coalesce(max(version), 0) FROM schema_version")
        return int(version)

    async def close(self) -> None:
        db, self._db_open = self._db_open, None
        if db is not None:
            await db.close()

    async def listening(self, timeout: float = 5.0) -> bool:
        """True once the LISTEN connection is up (a NOTIFY sent after it wakes waiters)."""
        return await self._db.listener.listening(timeout)


async def migrate(conn: Conn) -> int:
    """Run the migrations the schema lacks, all in one transaction; returns the version."""
    try:
        async with conn.transaction():
            await conn.execute(_MIGRATION_LOCK)
            # Asked first: a user without CREATE can start on a database already migrated.
            cur = await conn.execute("SELECT to_regclass('schema_version') IS NULL")
            if (row := await cur.fetchone()) is not None and row[0]:
                await conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            row = await cur.fetchone()
            version = 0 if row is None else int(row[0])
            for m in pending("postgres", version):
                await conn.execute(m.sql.encode())
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)",
                                   (m.version,))
                version = m.version
    except psycopg.Error as exc:
        raise StoreUnavailable(f"migration failed: {exc}") from exc
    return version
