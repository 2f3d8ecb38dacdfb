"""Storage: `open_store(url)` picks the Store implementation for a storage URL."""

from __future__ import annotations

from pixelrelay.errors import ConfigError
from pixelrelay.store.base import Store
from pixelrelay.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store", "open_store"]

_SQLITE = "sqlite:///"


def open_store(url: str, *, recover_in_flight: bool = True) -> Store:
    """A Store for `url` (not yet opened; call `await store.open()`).

    `recover_in_flight=False` for tools that attach beside a running gateway: its leased
    rows stay leased (the lease reaper still returns them if that gateway died).

    `sqlite:///relative.db` is relative to the working directory, `sqlite:////abs/path.db`
    absolute. `postgresql://user@host:5432/db` (or `postgres://`) is a libpq URL: any of its
    parameters work, e.g. `?options=-csearch_path%3Dpixelrelay` for a schema of its own.
    On PostgreSQL `recover_in_flight` changes nothing: leases alone bring rows back.
    """
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE):]
        if not path:
            raise ConfigError("storage.url",
                              "sqlite:/// needs a file path, e.g. sqlite:///pixelrelay.db")
        return SQLiteStore(path, recover_in_flight=recover_in_flight)
    if url.startswith(("postgresql://", "postgres://")):
        # Imported here: psycopg takes about 0.25 s to import, which SQLite users never need.
        from pixelrelay.store.postgres import PostgresStore

        return PostgresStore(url, recover_in_flight=recover_in_flight)
    raise ConfigError("storage.url", "unsupported storage URL (expected sqlite:///path.db or "
                                     "postgresql://host/database)")
