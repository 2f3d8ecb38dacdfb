"""DeliveryWorker against a real store (each engine) and a scripted TikTok behind
httpx.MockTransport."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

import httpx
import orjson
import pytest

from pixelrelay.clock import FakeClock
from pixelrelay.config import DeliverySettings, Secret
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.worker import DeliveryWorker
from pixelrelay.destinations.base import HttpRequest, HttpResponse, Outcome, OutcomeKind
from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.store import open_store
from pixelrelay.store.base import DestinationState, NewEvent, Store
from tests.conftest import count_rows

TOKEN = Secret("tt-access-token-secret-0001")
ROTATED = Secret("tt-access-token-secret-0002")
SETTINGS = DeliverySettings(flush_interval_s=0.01, retry_base_s=2.0, retry_cap_s=600.0,
                            max_attempts=15, max_age_hours=48.0, lease_s=60.0, max_qps=0.0)
Answer = Callable[[list[str]], httpx.Response]


class FakeTikTok:
    """A Destination whose items are {"event_id": ...}; codes classified like TikTok's."""

    name = "tt"

    def __init__(self, batch_size: int = 10, token: Secret = TOKEN) -> None:
        self.batch_size = batch_size
        self.token = token

    def route(self, event: Event, now: float) -> Route:
        return Route("tt", event.name, DeliveryState.PENDING,
                     payload=orjson.dumps({"event_id": event.event_id}))

    def build_request(self, batch_key: str, payloads: Sequence[bytes]) -> HttpRequest:
        return HttpRequest("https://tiktok.test/open_api/v1.3/event/track/",
                           {"Access-Token": self.token.reveal()},
                           b'{"data":[' + b",".join(payloads) + b"]}")

    def classify(self, response: HttpResponse) -> Outcome:
        if response.status is None or response.status >= 500:
            return Outcome(OutcomeKind.RETRY, message=response.error)
        body = orjson.loads(response.body)
        kind = {0: OutcomeKind.DELIVERED, 40001: OutcomeKind.SETUP,
                40002: OutcomeKind.PERMANENT}.get(body["code"], OutcomeKind.RETRY)
        return Outcome(kind, body["code"], body["message"], body["request_id"])


class Ceiling(random.Random):
    """Backoff draws at the top of their window, so waits are known exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


def tiktok(code: int = 0, message: str = "OK", status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message,
                                        "request_id": f"req-{code}"})


@dataclass
class ScriptedTikTok:
    """Answers each request with `answer(event_ids)`; remembers what it was sent."""

    answer: Answer = field(default=lambda ids: tiktok())
    requests: list[list[str]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        ids = [item["event_id"] for item in orjson.loads(request.content)["data"]]
        self.requests.append(ids)
        self.tokens.append(request.headers["Access-Token"])
        return self.answer(ids)


@dataclass
class Rig:
    store: Store
    clock: FakeClock
    tiktok: ScriptedTikTok
    sender: Sender
    url: str

    def worker(self, settings: DeliverySettings = SETTINGS, batch_size: int = 10,
               token: Secret = TOKEN, rng: random.Random | None = None) -> DeliveryWorker:
        return DeliveryWorker(self.store, FakeTikTok(batch_size, token), self.sender, settings,
                              self.clock, token.fingerprint(), rng=rng or random.Random(1))

    async def add(self, *event_ids: str, key: str = "web") -> None:
        dest = FakeTikTok()
        now = self.clock.now()
        events = [Event("Purchase", e, int(now)) for e in event_ids]
        await self.store.insert([NewEvent(e, (replace(dest.route(e, now), batch_key=key),))
                                 for e in events], now)

    async def state(self, event_id: str) -> tuple[DeliveryState, int, str | None]:
        (v,) = await self.store.deliveries(event_id)
        return v.state, v.attempts, v.dead_reason

    async def due(self, event_id: str) -> float:
        (v,) = await self.store.deliveries(event_id)
        assert v.next_attempt_at is not None
        return v.next_attempt_at

    async def drain(self, worker: DeliveryWorker) -> None:
        """Cycle until nothing is due, without moving the clock."""
        while await worker.run_once():
            pass

    def attempts_logged(self) -> int:
        return count_rows(self.url, "attempts")


@pytest.fixture
async def rig(storage_url: str) -> AsyncIterator[Rig]:
    store = open_store(storage_url)
    await store.open()
    script = ScriptedTikTok()
    sender = Sender(SETTINGS, transport=httpx.MockTransport(script))
    yield Rig(store, FakeClock(), script, sender, storage_url)
    await sender.close()
    await store.close()


async def test_delivers_a_batch_in_one_request(rig: Rig) -> None:
    await rig.add("e1", "e2", "e3")
    assert await rig.worker().run_once() == 3
    assert rig.tiktok.requests == [["e1", "e2", "e3"]]
    for e in ("e1", "e2", "e3"):
        assert await rig.state(e) == (DeliveryState.DELIVERED, 1, None)
    (view,) = await rig.store.deliveries("e1")
    assert (view.last_http_status, view.last_code, view.last_request_id) == (200, 0, "req-0")
    assert rig.attempts_logged() == 1
    assert await rig.worker().run_once() == 0


async def test_retries_5xx_with_backoff_then_delivers(rig: Rig) -> None:
    answers = iter([httpx.Response(503, text="busy"), tiktok()])
    rig.tiktok.answer = lambda ids: next(answers)
    await rig.add("e1")
    worker = rig.worker()
    await worker.run_once()
    (view,) = await rig.store.deliveries("e1")
    assert (view.state, view.attempts, view.last_http_status) == (DeliveryState.PENDING, 1, 503)
    assert view.next_attempt_at is not None
    wait = view.next_attempt_at - rig.clock.now()
    assert 0.0 <= wait <= SETTINGS.retry_base_s  # first retry: within [0, base]
    if wait > 0:
        assert await worker.run_once() == 0  # not due yet
    rig.clock.advance(wait)
    assert await worker.run_once() == 1
    assert await rig.state("e1") == (DeliveryState.DELIVERED, 2, None)
    assert len(rig.tiktok.requests) == 2


async def test_network_errors_spend_the_retry_budget(rig: Rig) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    rig.sender = Sender(SETTINGS, transport=httpx.MockTransport(refuse))
    await rig.add("e1")
    await rig.worker().run_once()
    (view,) = await rig.store.deliveries("e1")
    assert (view.state, view.attempts, view.last_http_status) == (DeliveryState.PENDING, 1, None)
    assert view.last_message is not None and "connection refused" in view.last_message
    await rig.sender.close()


async def test_bisection_isolates_one_bad_event(rig: Rig) -> None:
    ids = [f"e{i}" for i in range(10)]
    rig.tiktok.answer = lambda sent: (tiktok(40002, "Invalid currency in e7")
                                      if "e7" in sent else tiktok())
    await rig.add(*ids)
    assert await rig.worker().run_once() == 10
    for e in ids:
        expected = (DeliveryState.DEAD, 1, "rejected") if e == "e7" else (
            DeliveryState.DELIVERED, 1, None)
        assert await rig.state(e) == expected
    (bad,) = await rig.store.deliveries("e7")
    assert (bad.last_code, bad.last_message) == (40002, "Invalid currency in e7")
    accepted = [e for sent in rig.tiktok.requests if "e7" not in sent for e in sent]
    assert sorted(accepted) == sorted(set(ids) - {"e7"})  # each good event accepted once
    assert len(rig.tiktok.requests) <= 1 + 2 * 4  # halving: a few requests per level
    assert rig.attempts_logged() == len(rig.tiktok.requests)  # every request is logged


async def test_setup_error_pauses_keeps_queue_and_resumes_on_new_token(rig: Rig) -> None:
    rig.tiktok.answer = lambda ids: tiktok(40001, "Access token is invalid")
    await rig.add("e1", "e2")
    worker = rig.worker()
    assert await worker.run_once() == 2
    assert await rig.state("e1") == (DeliveryState.PENDING, 0, None)  # no retry budget spent
    paused = await rig.store.get_destination("tt")
    assert paused is not None and paused.paused
    assert paused.reason == "40001 Access token is invalid"
    assert paused.token_fingerprint == TOKEN.fingerprint()
    rig.clock.advance(3600)
    assert await worker.run_once() == 0  # paused: nothing is sent
    assert len(rig.tiktok.requests) == 1

    rig.tiktok.answer = lambda ids: tiktok()
    rotated = rig.worker(token=ROTATED)  # restarted with a new token
    assert await rotated.run_once() == 2
    assert rig.tiktok.tokens[-1] == ROTATED.reveal()
    assert await rig.state("e2") == (DeliveryState.DELIVERED, 1, None)
    resumed = await rig.store.get_destination("tt")
    assert resumed is not None and not resumed.paused


async def test_a_resume_written_by_any_process_lifts_a_pause_with_the_same_token(
        rig: Rig) -> None:
    rig.tiktok.answer = lambda ids: tiktok(40001, "Access token is invalid")
    await rig.add("e1")
    worker = rig.worker()
    await worker.run_once()
    assert await worker.run_once() == 0  # paused, and the pause is in the database
    rig.tiktok.answer = lambda ids: tiktok()  # e.g. the permission was granted meanwhile
    # What POST /v1/destinations/tt/resume writes, on whichever process took it.
    await rig.store.set_destination(DestinationState("tt", paused=False,
                                                     updated_at=rig.clock.now()))
    assert await worker.run_once() == 1
    assert await rig.state("e1") == (DeliveryState.DELIVERED, 1, None)


async def test_retry_budget_exhaustion_is_dead_max_attempts(rig: Rig) -> None:
    rig.tiktok.answer = lambda ids: httpx.Response(500, text="oops")
    settings = DeliverySettings(retry_base_s=1.0, retry_cap_s=10.0, max_attempts=3, max_qps=0)
    await rig.add("e1")
    worker = rig.worker(settings)
    for _ in range(5):
        await worker.run_once()
        rig.clock.advance(settings.retry_cap_s)
    assert await rig.state("e1") == (DeliveryState.DEAD, 3, "max_attempts")
    assert len(rig.tiktok.requests) == 3


async def test_undelivered_events_expire_after_max_age(rig: Rig) -> None:
    rig.tiktok.answer = lambda ids: httpx.Response(503)
    await rig.add("e1")
    worker = rig.worker()
    await worker.run_once()
    rig.clock.advance(49 * 3600)
    assert await worker.run_once() == 0
    (view,) = await rig.store.deliveries("e1")
    assert (view.state, view.dead_reason, view.attempts) == (DeliveryState.DEAD, "expired", 1)
    assert len(rig.tiktok.requests) == 1  # never sent beyond TikTok's 48 h dedup window


async def test_logs_attempts_without_token_or_payload(rig: Rig,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig.tiktok.answer = lambda ids: tiktok(40002, "bad event")
    await rig.add("e1")
    await rig.worker().run_once()
    assert "code=40002" in caplog.text and "events=1" in caplog.text
    assert TOKEN.reveal() not in caplog.text
    assert '"event_id"' not in caplog.text


async def test_run_loop_wakes_on_notify_and_stops(rig: Rig) -> None:
    worker = rig.worker()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await rig.add("e1", "e2")
    worker.notify()
    for _ in range(200):
        if (await rig.state("e2"))[0] is DeliveryState.DELIVERED:
            break
        await asyncio.sleep(0.01)
    assert await rig.state("e1") == (DeliveryState.DELIVERED, 1, None)
    stop.set()
    await asyncio.wait_for(task, 5)


# -- retries keep the batch together ----------------------------------------------------------

async def test_a_failed_request_waits_as_one_and_comes_back_whole(rig: Rig) -> None:
    answers = iter([httpx.Response(503), tiktok()])
    rig.tiktok.answer = lambda ids: next(answers)
    ids = [f"e{i}" for i in range(10)]
    await rig.add(*ids)
    worker = rig.worker()
    await worker.run_once()
    due = {await rig.due(e) for e in ids}
    assert len(due) == 1  # one backoff draw for the request, not one per event
    rig.clock.advance(due.pop() - rig.clock.now())
    await worker.run_once()
    assert rig.tiktok.requests == [ids, ids]


async def test_requests_go_out_full_and_never_mix_batch_keys(rig: Rig) -> None:
    answers = iter([httpx.Response(503)])
    rig.tiktok.answer = lambda ids: next(answers, tiktok())
    await rig.add("r0", "r1", "r2", "r3")
    worker = rig.worker(rng=Ceiling())  # the retry waits 2 s
    await worker.run_once()
    rig.clock.advance(1.0)
    for i in range(6):  # arrive while the retry waits, two keys interleaved
        await rig.add(f"w{i}")
        await rig.add(f"t{i}", key="web|test=ABC")
    rig.clock.advance(1.0)
    await rig.drain(worker)
    web = ["r0", "r1", "r2", "r3", "w0", "w1", "w2", "w3", "w4", "w5"]
    assert [sorted(r) for r in rig.tiktok.requests[1:]] == [
        web, ["t0", "t1", "t2", "t3", "t4", "t5"]]  # the retry topped up with its key's rows


async def test_a_success_soon_after_a_failure_leaves_the_backoff_alone(rig: Rig) -> None:
    rig.tiktok.answer = lambda ids: httpx.Response(503) if ids[0].startswith("a") else tiktok()
    await rig.add("a1", "a2")
    worker = rig.worker(rng=Ceiling())  # the first retry waits retry_base_s = 2 s exactly
    await worker.run_once()
    rig.clock.advance(1.0)  # less than the first backoff window: a random failure, no outage
    rig.tiktok.answer = lambda ids: tiktok()
    await rig.add("b1")
    await rig.drain(worker)
    assert rig.tiktok.requests == [["a1", "a2"], ["b1"]]  # a1, a2 still wait for their retry
    rig.clock.advance(1.0)
    await rig.drain(worker)
    assert rig.tiktok.requests[2:] == [["a1", "a2"]]


async def test_after_an_outage_the_whole_backlog_goes_at_once_in_full_batches(rig: Rig) -> None:
    up = False
    rig.tiktok.answer = lambda ids: tiktok() if up else httpx.Response(503)
    worker = rig.worker()  # batches of 10; backoff from 2 s, capped at 10 min
    expected = []
    for second in range(600):  # ten minutes down; 5 events a minute keep arriving
        if second % 60 == 0:
            batch = [f"m{second // 60}-{i}" for i in range(5)]
            expected += batch
            await rig.add(*batch)
        await rig.drain(worker)
        rig.clock.advance(1.0)
    failed = len(rig.tiktok.requests)
    assert failed > 50  # every retry of the outage failed
    up = True
    next_due = await rig.store.next_due("tt")
    assert next_due is not None
    rig.clock.advance(max(0.0, next_due - rig.clock.now()))  # the earliest retry comes due
    await rig.drain(worker)  # no more time passes: nothing waits for its backoff
    sent = rig.tiktok.requests[failed:]
    assert sorted(e for request in sent for e in request) == sorted(expected)
    assert len(sent) <= 1 + len(expected) // 10  # whatever was due, then full batches
    assert all(len(request) == 10 for request in sent[1:-1])


async def test_bisection_halves_that_fail_again_rejoin_full_batches(rig: Rig) -> None:
    ids = [f"e{i}" for i in range(10)]
    first_half = ids[:5]
    busy = iter([True])

    def answer(sent: list[str]) -> httpx.Response:
        if "e7" in sent:
            return tiktok(40002, "Invalid currency in e7")
        if sent == first_half and next(busy, False):
            return httpx.Response(503)  # this half meets a TikTok hiccup during bisection
        return tiktok()

    rig.tiktok.answer = answer
    await rig.add(*ids)
    worker = rig.worker()
    await worker.run_once()
    assert await rig.state("e7") == (DeliveryState.DEAD, 1, "rejected")
    assert {(await rig.state(e))[0] for e in first_half} == {DeliveryState.PENDING}
    sent = len(rig.tiktok.requests)
    newer = [f"f{i}" for i in range(5)]
    await rig.add(*newer)  # arrive while the half waits for its retry
    rig.clock.advance(await rig.due("e0") - rig.clock.now())
    await rig.drain(worker)
    assert [sorted(r) for r in rig.tiktok.requests[sent:]] == [sorted(first_half + newer)]


async def test_an_answer_that_never_completes_is_cut_off_and_retried(rig: Rig) -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # no socket: only the whole-request deadline can end it
        raise AssertionError("unreachable")

    settings = dataclasses.replace(SETTINGS, request_timeout_s=0.2)
    rig.sender = Sender(settings, transport=httpx.MockTransport(never))
    await rig.add("e1")
    await asyncio.wait_for(rig.worker(settings).run_once(), 30)
    (view,) = await rig.store.deliveries("e1")
    assert (view.state, view.attempts, view.last_http_status) == (DeliveryState.PENDING, 1, None)
    assert view.last_message == "timeout: no full answer within 0.2 s"
    await rig.sender.close()


async def test_a_split_is_no_attempt_and_its_halves_go_at_once_with_a_fresh_backoff(
        rig: Rig) -> None:
    ids = [f"e{i}" for i in range(10)]
    first_half = ids[:5]
    hiccups = iter([True] * 3)  # TikTok fails the whole batch three times first
    half_hiccup = iter([True])

    def answer(sent: list[str]) -> httpx.Response:
        if next(hiccups, False):
            return httpx.Response(503)
        if "e7" in sent:
            return tiktok(40002, "Invalid currency in e7")
        if sent == first_half and next(half_hiccup, False):
            return httpx.Response(503)  # this half meets a TikTok hiccup during bisection
        return tiktok()

    rig.tiktok.answer = answer
    await rig.add(*ids)
    worker = rig.worker(rng=Ceiling())  # waits at the top of their window: known exactly
    for _ in range(3):
        await worker.run_once()
        rig.clock.advance(await rig.due("e0") - rig.clock.now())
    assert len(rig.tiktok.requests) == 3 and await rig.state("e0") == (
        DeliveryState.PENDING, 3, None)

    await worker.run_once()  # refused: the halves go in this same cycle, the clock unmoved
    assert rig.tiktok.requests[3] == ids
    assert sorted(map(sorted, rig.tiktok.requests[4:])) == sorted(map(sorted, [
        first_half, ids[5:], ["e5", "e6"], ["e7", "e8", "e9"], ["e7"], ["e8", "e9"]]))
    # Attempts count requests that answered for the event, never a split: three failures,
    # then the request that delivered it (or refused it alone).
    for e in ("e5", "e6", "e8", "e9"):
        assert await rig.state(e) == (DeliveryState.DELIVERED, 4, None)
    assert await rig.state("e7") == (DeliveryState.DEAD, 4, "rejected")
    (bad,) = await rig.store.deliveries("e7")
    assert (bad.last_code, bad.last_message) == (40002, "Invalid currency in e7")
    # The half that failed waits the first window: TikTok answered (refused) in between, so
    # its three earlier failures no longer count, and the split added none (not 2 * 2^3 s).
    for e in first_half:
        assert await rig.state(e) == (DeliveryState.PENDING, 4, None)
        assert await rig.due(e) - rig.clock.now() == SETTINGS.retry_base_s
    # Its sibling was refused, so the refused event is not in it: it goes whole, once.
    rig.clock.advance(SETTINGS.retry_base_s)
    await rig.drain(worker)
    assert rig.tiktok.requests[10:] == [first_half]
    for e in first_half:
        assert await rig.state(e) == (DeliveryState.DELIVERED, 5, None)
    assert rig.attempts_logged() == len(rig.tiktok.requests)  # splits are logged all the same


async def test_a_half_that_holds_the_refused_event_is_split_before_it_is_sent_again(
        rig: Rig) -> None:
    ids = [f"e{i}" for i in range(10)]
    second_half = ids[5:]
    busy = iter([True])

    def answer(sent: list[str]) -> httpx.Response:
        if sent == second_half and next(busy, False):
            return httpx.Response(503)  # the half with e7 meets a hiccup
        if "e7" in sent:
            return tiktok(40002, "Invalid currency in e7")
        return tiktok()

    rig.tiktok.answer = answer
    await rig.add(*ids)
    worker = rig.worker(rng=Ceiling())
    await worker.run_once()  # refused; the first half is delivered, the second fails
    assert [sorted(r) for r in rig.tiktok.requests] == [sorted(ids), first := ids[:5],
                                                       second_half]
    assert {await rig.state(e) for e in first} == {(DeliveryState.DELIVERED, 1, None)}
    assert await rig.due("e5") - rig.clock.now() == SETTINGS.retry_base_s  # a first failure

    newer = ["f0", "f1", "f2"]
    await rig.add(*newer)  # arrive while the half waits: they must not meet e7 again
    rig.clock.advance(SETTINGS.retry_base_s)
    sent = len(rig.tiktok.requests)
    await rig.drain(worker)
    later = [sorted(r) for r in rig.tiktok.requests[sent:]]
    assert sorted(newer) in later
    assert second_half not in later  # TikTok refused it already: its halves went instead
    assert all(not (set(r) & set(newer) and set(r) & set(ids)) for r in later)
    for e in ("e5", "e6", "e8", "e9"):
        assert await rig.state(e) == (DeliveryState.DELIVERED, 2, None)
    assert await rig.state("e7") == (DeliveryState.DEAD, 2, "rejected")
    for e in newer:
        assert await rig.state(e) == (DeliveryState.DELIVERED, 1, None)
