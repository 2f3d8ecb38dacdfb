"""The store factories every contract suite runs against: each engine, each test on a
database of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pixelrelay.store import open_store
from pixelrelay.store.base import Store

StoreFactory = Callable[[], Awaitable[Store]]


def _sqlite(tmp_path: Path) -> Callable[[], Store]:
    return lambda: open_store(f"sqlite:///{tmp_path / 'outbox.db'}")


FACTORIES: dict[str, Callable[[Path], Callable[[], Store]]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(FACTORIES))
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on one database; calling it again is a process restart."""
    build = FACTORIES[request.param](tmp_path)
    opened: list[Store] = []

    async def factory() -> Store:
        store = build()
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()
