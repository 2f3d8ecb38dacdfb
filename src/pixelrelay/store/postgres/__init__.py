"""The PostgreSQL implementation of every storage protocol."""

from pixelrelay.store.postgres.store import PostgresStore, migrate

__all__ = ["PostgresStore", "migrate"]
