"""Several processes on one PostgreSQL database: claims never hand a row out twice,
the database decides idempotency, a merge holds its rows against claims, a session merges
every hit, and one process's insert wakes another's waiting worker."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.pipeline.enrich import SessionContext
from pixelrelay.store.base import InsertOutcome, Merged, NewEvent, Store
from pixelrelay.store.codec import encode_event
from pixelrelay.store.postgres import PostgresStore
from tests.contract.conftest import StoreFactory
from tests.contract.test_store_contract import T0, new_event, pending

pytestmark = pytest.mark.engines("postgres")


async def test_concurrent_claims_of_two_processes_never_share_a_row(
        make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    await a.insert([new_event(f"e{i}") for i in range(300)], T0)

    async def drain(store: Store) -> list[int]:
        got: list[int] = []
        while claimed := await store.claim("tt", 7, T0, 60):
            got += [c.delivery_id for c in claimed]
        return got

    runs = await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    ids = [i for run in runs for i in run]
    assert len(ids) == 300 and len(set(ids)) == 300


async def test_the_database_decides_idempotency_across_processes(
        make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    batches = [[new_event(f"e{i}") for i in range(j, j + 20)] for j in range(0, 100, 10)]
    results = await asyncio.gather(*(store.insert(batch, T0)
                                     for batch in batches for store in (a, b)))
    accepted = sorted(e.event.event_id for batch, outcome in
                      zip([b for b in batches for _ in (a, b)], results, strict=True)
                      for e, o in zip(batch, outcome, strict=True) if o == InsertOutcome.ACCEPTED)
    assert accepted == sorted(f"e{i}" for i in range(110))  # each exactly once
    assert len(await a.claim("tt", 1000, T0, 60)) == 110


async def test_a_claim_skips_a_row_while_another_process_merges_into_it(
        make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    first = Route("tt", "CompletePayment", DeliveryState.PENDING, payload=b'{"first":1}')
    await a.insert([NewEvent(Event("Purchase", "m1", int(T0)), (first,))], T0)
    seen_during_merge: list[int] = []
    url = a.url if isinstance(a, PostgresStore) else ""

    def claim_elsewhere() -> None:
        """Another process claims while the merge holds its lock (its own loop and store)."""
        async def run() -> None:
            other = PostgresStore(url)
            await other.open()
            seen_during_merge.append(len(await other.claim("tt", 10, T0 + 1, 60)))
            await other.close()

        asyncio.run(run())

    def merge(body: bytes) -> Merged:
        thread = threading.Thread(target=claim_elsewhere)
        thread.start()
        thread.join()
        return Merged(body=encode_event(Event("Purchase", "m1", int(T0), copies=("server",))),
                      routes={"tt": Route("tt", "CompletePayment", DeliveryState.PENDING,
                                          payload=b'{"merged":1}')}, release=True)

    again = NewEvent(Event("Purchase", "m1", int(T0)), (pending(),), merge=merge)
    assert await a.insert([again], T0 + 1) == [InsertOutcome.MERGED]
    assert seen_during_merge == [0]  # the half-merged row was not handed out
    (claimed,) = await b.claim("tt", 10, T0 + 1, 60)
    assert claimed.payload == b'{"merged":1}'


async def test_concurrent_hits_of_one_session_all_merge(make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    hits = [SessionContext("s1", first_seen=T0 + i, last_seen=T0 + i,
                           click_ids={("ttclid" if i % 2 else "ttp"): f"k{i}"})
            for i in range(20)]
    await asyncio.gather(*(store.record_session(hit, 86400.0)
                           for hit, store in zip(hits, [a, b] * 10, strict=True)))
    got = await b.get_session("s1")
    assert got is not None
    assert (got.first_seen, got.last_seen) == (T0, T0 + 19)  # no hit was lost
    assert got.click_ids.get("ttclid") is not None and got.click_ids.get("ttp") is not None


async def test_an_insert_wakes_a_worker_waiting_in_another_process(
        make_store: StoreFactory) -> None:
    worker, api = await make_store(), await make_store()
    assert isinstance(worker, PostgresStore)
    assert await worker.listening()  # LISTEN is up: nothing sent from here on is missed
    waiting = asyncio.create_task(worker.wait_for_work(["tt"], 60.0))
    await asyncio.sleep(0)  # the waiter registers before the insert commits
    await api.insert([new_event("wake")], T0)
    await asyncio.wait_for(waiting, 30.0)  # woken by NOTIFY, long before its own timeout
