"""The store factories every contract suite runs against: each engine (tests/conftest.py
`engine`: SQLite and PostgreSQL), each test on a database of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pixelrelay.store import open_store
from pixelrelay.store.base import Store
from tests.conftest import engine_url

StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture
async def make_store(engine: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on one database; calling it again is a process restart (SQLite) or
    another process on the same database (PostgreSQL)."""
    with engine_url(engine, tmp_path, "outbox") as url:
        opened: list[Store] = []

        async def factory() -> Store:
            store = open_store(url)
            await store.open()
            opened.append(store)
            return store

        yield factory
        for store in opened:
            await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()
