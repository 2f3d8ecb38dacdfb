"""`check`'s look at the configured database, changing nothing: can this process reach it,
and at which schema version is it (serve would migrate; check only reads)."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pixelrelay.errors import StoreUnavailable
from pixelrelay.store.migrate import latest
from pixelrelay.store.url import parse

_HAS_VERSIONS_SQLITE = ("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                        "AND name = 'schema_version'")
_ANY_TABLE_SQLITE = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
_HAS_VERSIONS_PG = "SELECT to_regclass('schema_version') IS NOT NULL"
_VERSION = "SELECT coalesce(max(version), 0) FROM schema_version"


@dataclass(frozen=True, slots=True)
class Schema:
    engine: Literal["sqlite", "postgres"]
    version: int | None  # None: no database or no schema yet (serve creates it)
    latest: int  # the version this pixelrelay migrates to

    @property
    def fresh(self) -> bool:
        return self.version is None


async def schema(url: str, timeout_s: float) -> Schema:
    """The database's schema version; StoreUnavailable with the reason when it cannot be read
    (ConfigError for a URL serve would refuse)."""
    target = parse(url)
    if target.engine == "sqlite":
        version = await asyncio.to_thread(_sqlite_version, target.location)
    else:
        version = await _postgres_version(target.location, timeout_s)
    return Schema(target.engine, version, latest(target.engine))


def _sqlite_version(path: str) -> int | None:
    if path == ":memory:":
        return None
    file = Path(path)
    if not file.exists():
        # serve creates the file and its folders: the nearest existing folder must allow it.
        folder = file.absolute().parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise StoreUnavailable(f"{path} does not exist and cannot be created: {folder} "
                                   "is not a writable folder (for this user)")
        return None
    if file.is_dir():
        raise StoreUnavailable(f"{path} is a folder, not a database file")
    try:
        # Read-only, through a URI so nothing is created or changed.
        conn = sqlite3.connect(f"{file.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            if conn.execute(_HAS_VERSIONS_SQLITE).fetchone() is None:
                if conn.execute(_ANY_TABLE_SQLITE).fetchone()[0]:
                    raise StoreUnavailable(f"{path} is not a pixelrelay database (it has tables "
                                           "but no schema_version)")
                return None
            return int(conn.execute(_VERSION).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot read {path}: {exc}") from None


async def _postgres_version(url: str, timeout_s: float) -> int | None:
    import psycopg  # as open_store: only PostgreSQL users pay for the import

    try:
        # The whole look within timeout_s: serve's own connect retries for 10 s, which a
        # pre-flight should not wait for; libpq's connect_timeout counts whole seconds, >= 2.
        async with asyncio.timeout(timeout_s):
            conn = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=max(2, math.ceil(timeout_s)))
            async with conn:
                cur = await conn.execute(_HAS_VERSIONS_PG)
                row = await cur.fetchone()
                if row is None or not row[0]:
                    return None
                cur = await conn.execute(_VERSION)
                row = await cur.fetchone()
                return 0 if row is None else int(row[0])
    except TimeoutError:
        raise StoreUnavailable(f"no answer within {timeout_s:g} s") from None
    except psycopg.Error as exc:
        raise StoreUnavailable(_first_line(str(exc), url)) from None


def _first_line(message: str, url: str) -> str:
    """libpq's message without a password it may quote (a malformed URL is echoed back)."""
    line = (message.strip().splitlines() or ["no message"])[0]
    for password in _passwords(url):
        line = line.replace(password, "****")
    return line


def _passwords(url: str) -> list[str]:
    """The URL's password as written and decoded, longest first."""
    try:
        raw = urlsplit(url).password
    except ValueError:
        return []
    return sorted({raw, unquote(raw)} - {""}, key=len, reverse=True) if raw else []
