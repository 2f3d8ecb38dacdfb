"""Storage: `open_store(url)` picks the Store implementation for a storage URL."""

from __future__ import annotations

from pixelrelay.store.base import Store
from pixelrelay.store.sqlite import SQLiteStore
from pixelrelay.store.url import parse

__all__ = ["SQLiteStore", "Store", "open_store"]


def open_store(url: str, *, recover_in_flight: bool = True) -> Store:
    """A Store for `url` (not yet opened; call `await store.open()`).

    `recover_in_flight=False` for tools that attach beside a running gateway: its leased
    rows stay leased (the lease reaper still returns them if that gateway died).

    `sqlite:///relative.db` is relative to the working directory, `sqlite:////abs/path.db`
    absolute. `postgresql://user@host:5432/db` (or `postgres://`) is a libpq URL: any of its
    parameters work, e.g. `?options=-csearch_path%3Dpixelrelay` for a schema of its own.
    On PostgreSQL `recover_in_flight` changes nothing: leases alone bring rows back.
    """
    target = parse(url)  # ConfigError naming storage.url, as the config reader reports it
    if target.engine == "sqlite":
        return SQLiteStore(target.location, recover_in_flight=recover_in_flight)
    # Imported here: psycopg takes about 0.25 s to import, which SQLite users never need.
    from pixelrelay.store.postgres import PostgresStore

    return PostgresStore(target.location, recover_in_flight=recover_in_flight)
