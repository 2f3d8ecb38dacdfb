"""The ops commands' way into a gateway's database: attach beside a running gateway."""

from __future__ import annotations

from pixelrelay.config import Settings
from pixelrelay.store import open_store
from pixelrelay.store.base import Store


async def attach(settings: Settings) -> Store:
    """The configured store, opened without recovering in-flight rows: a running gateway's
    leased batches stay its own (the lease reaper still returns them if that gateway died)."""
    store = open_store(settings.storage.url, recover_in_flight=False)
    await store.open()
    return store
