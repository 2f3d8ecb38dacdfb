"""The SQLite writer runs a group's statements on the event loop: it must never block the
loop on another process's write lock, and it serves callers on other loops (threads)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from pixelrelay.store import open_store
from pixelrelay.store.base import InsertOutcome
from tests.contract.test_store_contract import T0, new_event


async def test_another_process_holding_the_write_lock_does_not_stall_the_loop(
        tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    await store.open()
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is in the middle of its write
    insert = asyncio.create_task(store.insert([new_event("e1")], T0))
    ticks = 0
    for _ in range(20):  # the loop keeps serving while the insert waits for the lock
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 20 and not insert.done()
    other.execute("COMMIT")
    assert await insert == [InsertOutcome.ACCEPTED]
    other.close()
    await store.close()


async def test_writes_from_another_loop_share_the_writer(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    await store.open()
    elsewhere: list[list[InsertOutcome]] = []

    def other_loop() -> None:
        async def run() -> None:
            elsewhere.extend(await asyncio.gather(
                *(store.insert([new_event(f"t{i}")], T0) for i in range(50))))

        asyncio.run(run())

    thread = threading.Thread(target=other_loop)
    thread.start()
    here = await asyncio.gather(*(store.insert([new_event(f"m{i}")], T0) for i in range(50)))
    await asyncio.to_thread(thread.join)
    assert here + elsewhere == [[InsertOutcome.ACCEPTED]] * 100
    assert len(await store.claim("tt", 1000, T0, 60)) == 100
    await store.close()


async def test_a_burst_of_batches_commits_in_bounded_groups(tmp_path: Path) -> None:
    """A group's statements hold the event loop: ten 500-event batches queued at once are
    several transactions of at most 2,000 rows, not one of 5,000."""
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    await store.open()
    before = store.commits  # type: ignore[attr-defined]
    batches = [[new_event(f"b{j}-{i}") for i in range(500)] for j in range(10)]
    outcomes = await asyncio.gather(*(store.insert(batch, T0) for batch in batches))
    assert outcomes == [[InsertOutcome.ACCEPTED] * 500] * 10
    assert store.commits - before >= 3  # type: ignore[attr-defined]
    assert len(await store.claim("tt", 10_000, T0, 60)) == 5000
    await store.close()


async def test_a_quick_read_runs_on_the_loop_and_never_waits_for_its_connection(
        tmp_path: Path) -> None:
    """Session lookups (read quick=True) run on the caller's thread: a worker thread has to
    win the GIL back from the busy loop at every SQLite step. While another loop's thread
    holds the quick connection, a quick read goes to the worker thread instead of waiting."""
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    await store.open()
    db = store._db  # type: ignore[attr-defined]
    assert await store.insert([new_event("q1")], T0) == [InsertOutcome.ACCEPTED]

    def count(where: list[int]) -> Callable[[sqlite3.Connection], int]:
        def run(conn: sqlite3.Connection) -> int:
            where.append(threading.get_ident())
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        return run

    here = threading.get_ident()
    on: list[int] = []
    assert await db.read(count(on), quick=True) == 1
    assert await db.read(count(on)) == 1
    assert on[0] == here and on[1] != here  # quick on the loop, the other in the worker

    holding, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        holding.set()
        release.wait(10)

    other = threading.Thread(target=lambda: asyncio.run(db.read(hold, quick=True)))
    other.start()
    await asyncio.to_thread(holding.wait, 10)
    meanwhile: list[int] = []
    assert await asyncio.wait_for(db.read(count(meanwhile), quick=True), 5) == 1
    assert meanwhile[0] != here  # its connection was busy: answered from the worker thread
    release.set()
    await asyncio.to_thread(other.join)
    await store.close()
