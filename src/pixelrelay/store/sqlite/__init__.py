"""The SQLite implementation of every storage protocol."""

from pixelrelay.store.sqlite.store import SQLiteStore, migrate

__all__ = ["SQLiteStore", "migrate"]
