"""How an idle worker learns of new rows: its own process's notify, the store's signal for
another process's rows (PostgreSQL's NOTIFY), and the pause lifted in the database."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from pixelrelay.clock import SystemClock
from pixelrelay.delivery import worker as worker_module
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.worker import DeliveryWorker
from pixelrelay.model import Event
from pixelrelay.store import open_store
from pixelrelay.store.base import DestinationState, NewEvent, Store
from pixelrelay.store.sqlite import SQLiteStore
from tests.integration.test_worker import SETTINGS, TOKEN, FakeTikTok, ScriptedTikTok, tiktok
from tests.support import await_for


class SignallingStore(SQLiteStore):
    """SQLite with the cross-process signal PostgreSQL has: `wait_for_work` returns early
    once `signal` is set (as LISTEN does on another process's NOTIFY)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.signal = asyncio.Event()
        self.waits: list[Sequence[str]] = []

    async def wait_for_work(self, destinations: Sequence[str], timeout: float) -> None:
        self.waits.append(list(destinations))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.signal.wait(), timeout)
        self.signal.clear()


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SignallingStore, SQLiteStore]]:
    """The delivery process's store, and another process's (an API) on the same file."""
    mine = SignallingStore(str(tmp_path / "wake.db"))
    await mine.open()
    other = SQLiteStore(str(tmp_path / "wake.db"), recover_in_flight=False)
    await other.open()
    yield mine, other
    await other.close()
    await mine.close()


async def add(store: Store, *event_ids: str) -> None:
    dest = FakeTikTok()
    now = SystemClock().now()
    events = [Event("Purchase", e, int(now)) for e in event_ids]
    await store.insert([NewEvent(e, (dest.route(e, now),)) for e in events], now)


@contextlib.asynccontextmanager
async def running(worker: DeliveryWorker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_rows_of_another_process_wake_an_idle_worker_through_the_store(
        stores: tuple[SignallingStore, SQLiteStore], monkeypatch: pytest.MonkeyPatch) -> None:
    # No polling to fall back on: only the store's signal can wake the worker in this test.
    monkeypatch.setattr(worker_module, "IDLE_POLL_S", 3600.0)
    mine, other = stores
    script = ScriptedTikTok()
    sender = Sender(SETTINGS, transport=httpx.MockTransport(script))
    worker = DeliveryWorker(mine, FakeTikTok(), sender, SETTINGS, SystemClock(),
                            TOKEN.fingerprint(), rng=random.Random(1))
    try:
        async with running(worker):
            await await_for(lambda: len(mine.waits) >= 1)  # idle, waiting on the store
            await add(other, "e1", "e2")  # committed elsewhere: no notify reaches this worker
            mine.signal.set()
            await await_for(lambda: script.requests == [["e1", "e2"]])
            assert mine.waits[0] == ["tt"]  # it asked for its own destination's rows
    finally:
        await sender.close()


async def test_a_pause_lifted_in_the_database_resumes_the_running_worker(
        stores: tuple[SignallingStore, SQLiteStore], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "IDLE_POLL_S", 0.05)
    mine, other = stores
    script = ScriptedTikTok(answer=lambda ids: tiktok(40001, "no permission"))
    sender = Sender(SETTINGS, transport=httpx.MockTransport(script))
    worker = DeliveryWorker(mine, FakeTikTok(), sender, SETTINGS, SystemClock(),
                            TOKEN.fingerprint(), rng=random.Random(1))
    try:
        async with running(worker):
            await add(other, "p1")
            worker.notify()
            await await_for(lambda: worker.paused)
            assert len(script.requests) == 1
            script.answer = lambda ids: tiktok()
            # An API process's resume: written to the store, no call into this worker.
            await other.set_destination(DestinationState("tt", paused=False, updated_at=1.0))
            await await_for(lambda: len(script.requests) == 2)
            assert script.requests[1] == ["p1"]
            state = await other.get_destination("tt")
            assert state is not None and not state.paused
    finally:
        await sender.close()


@pytest.mark.engines("postgres")
async def test_another_processs_insert_wakes_an_idle_worker_by_notify(
        storage_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real signal: PostgreSQL's NOTIFY from another store's insert, LISTENed for by this
    store, with no polling to fall back on."""
    monkeypatch.setattr(worker_module, "IDLE_POLL_S", 3600.0)
    mine, other = open_store(storage_url), open_store(storage_url, recover_in_flight=False)
    await mine.open()
    await other.open()
    waits: list[Sequence[str]] = []
    listen = mine.wait_for_work

    async def spy(destinations: Sequence[str], timeout: float) -> None:
        waits.append(list(destinations))  # the waiter is registered when this is seen
        await listen(destinations, timeout)

    monkeypatch.setattr(mine, "wait_for_work", spy)
    script = ScriptedTikTok()
    sender = Sender(SETTINGS, transport=httpx.MockTransport(script))
    worker = DeliveryWorker(mine, FakeTikTok(), sender, SETTINGS, SystemClock(),
                            TOKEN.fingerprint(), rng=random.Random(1))
    try:
        async with running(worker):
            await await_for(lambda: len(waits) >= 1)  # idle, listening
            await add(other, "n1", "n2")  # another process: only NOTIFY can tell this one
            await await_for(lambda: script.requests == [["n1", "n2"]])
    finally:
        await sender.close()
        await other.close()
        await mine.close()
