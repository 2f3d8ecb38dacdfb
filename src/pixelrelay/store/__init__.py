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
    absolute.
    """
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE):]
        if not path:
            raise ConfigError("storage.url",
                              "sqlite:/// needs a file path, e.g. sqlite:///pixelrelay.db")
        return SQLiteStore(path, recover_in_flight=recover_in_flight)
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("storage.url", "PostgreSQL support arrives in a later release")
    raise ConfigError("storage.url",
                      "unsupported storage URL (expected sqlite:///path.db)")
