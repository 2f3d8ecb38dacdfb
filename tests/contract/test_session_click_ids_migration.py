"""A database at the version before the sessions' click ids became one map (SQLite 15,
PostgreSQL 6) migrates with its sessions' ids kept: the ttclid and ttp columns move into
click_ids beside the ids already there; identity links under the old form go."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from pixelrelay.pipeline.enrich import Lookup
from pixelrelay.store import open_store
from pixelrelay.store.migrate import migrations
from pixelrelay.store.sqlite.store import _statements
from tests.conftest import engine_url

OLD = {"sqlite": 15, "postgres": 6}
ROWS = [  # session_id, ttclid, ttp, click_ids (as the old version stored them)
    ("s_both", "E.C.P.old", "2.ttp.old", '{"fbc": "fb.1.1700000000000.A"}'),
    ("s_click", "E.C.P.only", None, None),
    ("s_none", None, None, None),
    ("s_clash", "E.C.P.column", None, '{"ttclid": "E.C.P.map", "fbp": "fb.1.1.9"}'),
]
WANT = {
    "s_both": {"ttclid": "E.C.P.old", "ttp": "2.ttp.old", "fbc": "fb.1.1700000000000.A"},
    "s_click": {"ttclid": "E.C.P.only"},
    "s_none": {},
    "s_clash": {"ttclid": "E.C.P.column", "fbp": "fb.1.1.9"},  # the column wins
}


def _old_sqlite(url: str) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for m in migrations("sqlite")[:OLD["sqlite"]]:
        for statement in _statements(m.sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (m.version,))
    conn.executemany("INSERT INTO sessions (session_id, ttclid, ttp, ip, user_agent, "
                     "landing_url, first_seen, last_seen, click_ids) "
                     "VALUES (?, ?, ?, '192.0.2.1', 'UA', NULL, 1, 2, ?)", ROWS)
    conn.execute("INSERT INTO session_identities VALUES ('email:' || ?, 's_both', 2)",
                 ("a" * 64,))
    conn.close()


def _old_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        for m in migrations("postgres")[:OLD["postgres"]]:
            conn.execute(m.sql.encode())
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (m.version,))
        for row in ROWS:
            conn.execute("INSERT INTO sessions (session_id, ttclid, ttp, ip, user_agent, "
                         "landing_url, first_seen, last_seen, click_ids) "
                         "VALUES (%s, %s, %s, '192.0.2.1', 'UA', NULL, 1, 2, %s::jsonb)", row)
        conn.execute("INSERT INTO session_identities VALUES (%s, 's_both', 2)",
                     ("email:" + "a" * 64,))


async def test_an_old_database_keeps_its_sessions_click_ids(engine: str, tmp_path: Path) -> None:
    with engine_url(engine, tmp_path, "old") as url:
        (_old_sqlite if engine == "sqlite" else _old_postgres)(url)
        store = open_store(url)
        await store.open()
        try:
            assert await store.schema_version() == len(migrations(engine))
            for sid, want in WANT.items():
                got = await store.get_session(sid)
                assert got is not None and got.click_ids == want, sid
                assert (got.ip, got.user_agent, got.last_seen) == ("192.0.2.1", "UA", 2)
            # Links under the old form (a platform's SHA-256) are gone.
            old_link = Lookup(None, (), ("email:" + "a" * 64,))
            assert await store.find_sessions([old_link], 0.0) == [None]
        finally:
            await store.close()
