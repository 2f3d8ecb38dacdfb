"""The outbox contract, run against every Store implementation (tests/contract/conftest.py)."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from pathlib import Path

import orjson

from pixelrelay.errors import Notice, NoticeKind, StoreUnavailable
from pixelrelay.model import (
    Ad,
    App,
    Consent,
    ConsentState,
    DeliveryState,
    Event,
    Lead,
    Page,
    PlainUser,
    Route,
    Source,
    User,
)
from pixelrelay.store import open_store
from pixelrelay.store.base import (
    IDEMPOTENCY_WINDOW_S,
    AttemptRecord,
    DestinationState,
    Finished,
    InsertOutcome,
    Merged,
    NewEvent,
    Store,
)
from pixelrelay.store.codec import decode_event, encode_event
from pixelrelay.store.rows import QueueRow
from tests.contract.conftest import StoreFactory

ACCEPTED, DUPLICATE, MERGED = InsertOutcome.ACCEPTED, InsertOutcome.DUPLICATE, InsertOutcome.MERGED

T0 = 1_776_943_380.0


async def queue(store: Store, destination: str = "tt") -> QueueRow:
    (row,) = await store.queues([destination])
    return row


def pending(dest: str = "tt", name: str = "CompletePayment", key: str = "web") -> Route:
    return Route(dest, name, DeliveryState.PENDING, payload=b'{"x":1}', batch_key=key)


def new_event(event_id: str, *routes: Route) -> NewEvent:
    return NewEvent(Event(name="Purchase", event_id=event_id, event_time=int(T0)),
                    routes if routes else (pending(),))


async def state_of(store: Store, event_id: str, dest: str = "tt") -> DeliveryState:
    views = [v for v in await store.deliveries(event_id) if v.destination == dest]
    return views[-1].state


# -- insert and idempotency --------------------------------------------------------------------

async def test_insert_accepts_and_keeps_a_pending_delivery(store: Store) -> None:
    assert await store.insert([new_event("e1")], T0) == [ACCEPTED]
    (view,) = await store.deliveries("e1")
    assert (view.destination, view.dest_event, view.state) == ("tt", "CompletePayment",
                                                               DeliveryState.PENDING)
    assert view.attempts == 0 and view.next_attempt_at == T0 and view.created_at == T0


async def test_repeat_within_48h_is_a_duplicate_and_not_stored_again(store: Store) -> None:
    assert await store.insert([new_event("e1")], T0) == [ACCEPTED]
    assert await store.insert([new_event("e1")], T0 + IDEMPOTENCY_WINDOW_S - 1) == [DUPLICATE]
    assert len(await store.deliveries("e1")) == 1


async def test_repeat_within_one_batch_is_a_duplicate(store: Store) -> None:
    assert await store.insert([new_event("e1"), new_event("e1")], T0) == [ACCEPTED, DUPLICATE]


async def test_repeat_after_48h_is_accepted_again(store: Store) -> None:
    await store.insert([new_event("e1")], T0)
    later = T0 + IDEMPOTENCY_WINDOW_S
    assert await store.insert([new_event("e1")], later) == [ACCEPTED]
    (view,) = await store.deliveries("e1")  # the view shows the latest acceptance
    assert view.created_at == later
    assert len(await store.claim("tt", 10, later, 60)) == 2  # both are delivered


async def test_inserts_queued_together_accept_again_after_48h_as_if_one_after_the_other(
        store: Store) -> None:
    """Calls sharing a commit keep their order's outcomes even when their times are two
    days apart (an import): the later one re-accepts the key the earlier one just took."""
    later = T0 + IDEMPOTENCY_WINDOW_S
    outcomes = await asyncio.gather(store.insert([new_event("e1")], T0),
                                    store.insert([new_event("e1")], later),
                                    store.insert([new_event("e1")], later + 1))
    assert outcomes == [[ACCEPTED], [ACCEPTED], [DUPLICATE]]
    assert len(await store.claim("tt", 10, later + 1, 60)) == 2
    assert (await store.deliveries("e1"))[0].created_at == later


TRICKY = ['"quoted"', "back\\slash \\u0000 as text", "ünïcödé ✓ 🎉", "\u2028\u2029",
          "tab\tnew\nline", "</script>", ""]


async def test_payloads_come_back_byte_for_byte_and_bodies_as_they_were(store: Store) -> None:
    """Rows travel to the database in bulk (JSON arrays on PostgreSQL): nothing in them may
    change on the way, not an escape in a payload, not a float's last digit."""
    batch, payloads = [], {}
    for i, text in enumerate(TRICKY):
        payload = orjson.dumps({"s": text, "f": 0.1 + 0.2 * i, "big": 2**63 - 1 - i,
                                "tiny": 5e-324 * (i + 1), "neg": -0.0})
        payloads[f"t{i}"] = payload
        event = Event("Purchase", f"t{i}", int(T0), properties={"note": text, "v": 1 / 3 + i},
                      received_at=T0 + 0.1 * i)
        batch.append(NewEvent(event, (Route("tt", "CompletePayment", DeliveryState.PENDING,
                                            payload=payload),)))
    assert await store.insert(batch, T0 + 0.123456789) == [ACCEPTED] * len(TRICKY)
    claimed = await store.claim("tt", 100, T0 + 1, 60)
    assert {c.event_id: c.payload for c in claimed} == payloads
    assert {c.created_at for c in claimed} == {T0 + 0.123456789}
    for item in batch:
        (row,) = await store.trace(item.event.event_id)
        assert row.payload == payloads[item.event.event_id]
        assert decode_event(row.body) == item.event


async def test_only_new_routes_are_stored(store: Store) -> None:
    await store.insert([new_event("e1", pending("a"))], T0)
    assert await store.insert([new_event("e1", pending("a"), pending("b"))], T0 + 1) == [ACCEPTED]
    assert sorted(v.destination for v in await store.deliveries("e1")) == ["a", "b"]


async def test_key_includes_the_destination_event_name(store: Store) -> None:
    await store.insert([new_event("e1", pending(name="AddToCart"))], T0)
    assert await store.insert([new_event("e1", pending(name="CompletePayment"))], T0) == [ACCEPTED]


async def test_event_without_routes_is_accepted(store: Store) -> None:
    assert await store.insert([NewEvent(Event("Purchase", "e1", int(T0)), ())], T0) == [ACCEPTED]


async def test_suppressed_and_filtered_are_kept_with_reason_but_never_claimed(
        store: Store) -> None:
    await store.insert([
        new_event("s", Route("tt", "CompletePayment", DeliveryState.SUPPRESSED,
                             reason="consent: marketing denied")),
        new_event("f", Route("tt", "CompletePayment", DeliveryState.FILTERED,
                             reason="excluded order source")),
    ], T0)
    (s,) = await store.deliveries("s")
    assert (s.state, s.reason) == (DeliveryState.SUPPRESSED, "consent: marketing denied")
    assert (await store.deliveries("f"))[0].state == DeliveryState.FILTERED
    assert await store.claim("tt", 100, T0 + 3600, 60) == []
    assert (await queue(store)).pending == 0
    assert await store.next_due("tt") is None


# -- claim, finish, leases ---------------------------------------------------------------------

async def test_claim_leases_due_rows_oldest_first_per_destination(store: Store) -> None:
    await store.insert([new_event("e1")], T0)
    await store.insert([new_event("e2"), new_event("x", pending("other"))], T0 + 1)
    await store.insert([new_event("e3")], T0 + 2)
    first = await store.claim("tt", 2, T0 + 10, 60)
    assert [c.event_id for c in first] == ["e1", "e2"]
    assert len({c.lease_token for c in first}) == 1
    assert first[0].payload == b'{"x":1}' and first[0].attempts == 0
    assert first[0].created_at == T0
    assert await state_of(store, "e1") == DeliveryState.IN_FLIGHT
    assert [c.event_id for c in await store.claim("tt", 10, T0 + 10, 60)] == ["e3"]
    assert await store.claim("tt", 10, T0 + 10, 60) == []  # leased rows are not claimed twice
    stats = await queue(store)
    assert (stats.pending, stats.in_flight) == (0, 3)


async def test_claim_respects_next_attempt_at(store: Store) -> None:
    await store.insert([new_event("e1")], T0)
    (c,) = await store.claim("tt", 10, T0, 60)
    await store.finish([Finished(c.delivery_id, c.lease_token, DeliveryState.PENDING,
                                 next_attempt_at=T0 + 30, http_status=503)], None, T0)
    assert await store.next_due("tt") == T0 + 30
    assert await store.claim("tt", 10, T0 + 29, 60) == []
    (again,) = await store.claim("tt", 10, T0 + 30, 60)
    assert again.attempts == 1


async def test_finish_records_outcome_and_attempt_log(store: Store) -> None:
    await store.insert([new_event("e1"), new_event("e2")], T0)
    c1, c2 = await store.claim("tt", 10, T0, 60)
    attempt = AttemptRecord("tt", ("e1", "e2"), 200, 0, "OK", "req-1", 12.5, "delivered", T0 + 1)
    n = await store.finish([
        Finished(c1.delivery_id, c1.lease_token, DeliveryState.DELIVERED, http_status=200,
                 code=0, message="OK", request_id="req-1"),
        Finished(c2.delivery_id, c2.lease_token, DeliveryState.DEAD, http_status=200,
                 code=40002, message="bad currency", request_id="req-1",
                 dead_reason="rejected"),
    ], attempt, T0 + 1)
    assert n == 2
    (v1,) = await store.deliveries("e1")
    assert (v1.state, v1.attempts, v1.last_http_status, v1.last_code, v1.last_request_id) == (
        DeliveryState.DELIVERED, 1, 200, 0, "req-1")
    (v2,) = await store.deliveries("e2")
    assert (v2.state, v2.dead_reason, v2.last_code, v2.last_message) == (
        DeliveryState.DEAD, "rejected", 40002, "bad currency")
    assert v2.updated_at == T0 + 1 and v2.next_attempt_at is None


async def test_finish_is_fenced_by_the_lease_token(store: Store) -> None:
    await store.insert([new_event("e1")], T0)
    (c,) = await store.claim("tt", 10, T0, 10)
    wrong = Finished(c.delivery_id, "not-the-token", DeliveryState.DELIVERED, http_status=200)
    assert await store.finish([wrong], None, T0) == 0
    assert await store.reap_leases(T0 + 11) == 1
    (c2,) = await store.claim("tt", 10, T0 + 11, 10)
    late = Finished(c.delivery_id, c.lease_token, DeliveryState.DELIVERED, http_status=200)
    assert await store.finish([late], None, T0 + 12) == 0  # the old lease lost the row
    assert await state_of(store, "e1") == DeliveryState.IN_FLIGHT
    ok = Finished(c2.delivery_id, c2.lease_token, DeliveryState.DELIVERED, http_status=200)
    assert await store.finish([ok], None, T0 + 12) == 1
    assert await store.finish([ok], None, T0 + 13) == 0  # finished once only


async def test_attempt_counting(store: Store) -> None:
    """A request (status, code, or an attempt record) counts; a pause note does not."""
    await store.insert([new_event("e1")], T0)
    net_error = AttemptRecord("tt", ("e1",), None, None, "timeout", None, 5.0, "retry", T0)
    (c,) = await store.claim("tt", 1, T0, 60)
    await store.finish([Finished(c.delivery_id, c.lease_token, DeliveryState.PENDING,
                                 next_attempt_at=T0, message="timeout")], net_error, T0)
    (c,) = await store.claim("tt", 1, T0, 60)
    await store.finish([Finished(c.delivery_id, c.lease_token, DeliveryState.PENDING,
                                 message="destination paused: 40001")], None, T0)
    (view,) = await store.deliveries("e1")
    assert view.attempts == 1
    assert view.last_message == "destination paused: 40001"
    assert view.next_attempt_at == T0  # PENDING without a time is due now


async def test_reap_returns_expired_leases_only(store: Store) -> None:
    await store.insert([new_event("e1")], T0)
    await store.claim("tt", 10, T0, 10)
    assert await store.reap_leases(T0 + 5) == 0
    assert await store.reap_leases(T0 + 11) == 1
    (c,) = await store.claim("tt", 10, T0 + 11, 10)
    assert c.attempts == 0  # a lost lease is not a failed attempt


async def test_a_dead_owners_in_flight_rows_come_back(make_store: StoreFactory,
                                                     engine: str) -> None:
    first = await make_store()
    await first.insert([new_event("e1"), new_event("e2")], T0)
    await first.claim("tt", 1, T0, 3600)
    await first.close()
    second = await make_store()
    if engine == "sqlite":  # the next owner of the file takes them back on open
        assert sorted(c.event_id for c in await second.claim("tt", 10, T0, 60)) == ["e1", "e2"]
        return
    # PostgreSQL: other processes may share the database, so opening leaves leases alone;
    # the row's own lease brings it back once it has expired.
    assert [c.event_id for c in await second.claim("tt", 10, T0, 7200)] == ["e2"]
    assert await second.reap_leases(T0 + 3599) == 0
    assert await second.reap_leases(T0 + 3601) == 1
    assert [c.event_id for c in await second.claim("tt", 10, T0 + 3601, 60)] == ["e1"]


async def test_a_tool_attaching_beside_a_live_gateway_leaves_its_leases_alone(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    gateway = open_store(url)
    await gateway.open()
    try:
        await gateway.insert([new_event("e1"), new_event("e2")], T0)
        (leased,) = await gateway.claim("tt", 1, T0, 3600)
        tool = open_store(url, recover_in_flight=False)  # e.g. `pixelrelay replay`
        await tool.open()
        await tool.close()
        assert (await queue(gateway)).in_flight == 1
        others = await gateway.claim("tt", 10, T0, 60)
        assert [c.event_id for c in others] == ["e2"]  # the leased batch is not handed out twice
        assert leased.event_id == "e1"
    finally:
        await gateway.close()


async def test_expire_marks_old_pending_dead(store: Store) -> None:
    await store.insert([new_event("old"), new_event("other", pending("b"))], T0)
    await store.insert([new_event("new")], T0 + 100)
    assert await store.expire("tt", T0 + 50, T0 + 200) == 1
    (old,) = await store.deliveries("old")
    assert (old.state, old.dead_reason) == (DeliveryState.DEAD, "expired")
    assert await state_of(store, "new") == DeliveryState.PENDING
    assert await state_of(store, "other", "b") == DeliveryState.PENDING


async def test_queue_stats_and_next_due(store: Store) -> None:
    assert await store.next_due("tt") is None
    await store.insert([new_event("e1")], T0)
    await store.insert([new_event("e2")], T0 + 5)
    await store.claim("tt", 1, T0 + 10, 60)
    stats = await queue(store)
    assert (stats.pending, stats.in_flight, stats.oldest_pending_at) == (1, 1, T0 + 5)
    assert await store.next_due("tt") == T0 + 5


async def test_destination_state_round_trips(store: Store) -> None:
    assert await store.get_destination("tt") is None
    paused = DestinationState("tt", True, "40001 invalid token", "fp1", T0)
    await store.set_destination(paused)
    assert await store.get_destination("tt") == paused
    await store.set_destination(DestinationState("tt", False, updated_at=T0 + 1))
    assert await store.get_destination("tt") == DestinationState("tt", False, None, None, T0 + 1)


# -- durability and group commit ---------------------------------------------------------------

async def test_concurrent_inserts_share_commits_and_survive_reopen(
        make_store: StoreFactory) -> None:
    store = await make_store()
    commits = getattr(store, "commits", None)
    results = await asyncio.gather(*(store.insert([new_event(f"e{i}")], T0)
                                     for i in range(100)))
    assert all(r == [ACCEPTED] for r in results)
    if commits is not None:  # the SQLite store counts its transactions
        assert store.commits - commits < 100  # type: ignore[attr-defined]
    await store.close()
    reopened = await make_store()
    assert len(await reopened.claim("tt", 1000, T0, 60)) == 100


async def test_a_failing_insert_keeps_nothing_and_sinks_no_other_call(
        make_store: StoreFactory) -> None:
    store = await make_store()
    broken = Route(None, "CompletePayment", DeliveryState.PENDING,  # type: ignore[arg-type]
                   payload=b"{}")
    good, bad = await asyncio.gather(
        store.insert([new_event("ok")], T0),
        store.insert([new_event("kept-not"), new_event("bad", broken)], T0),
        return_exceptions=True)
    assert good == [ACCEPTED]
    assert isinstance(bad, StoreUnavailable)
    assert await store.deliveries("kept-not") == []
    # no idempotency key left:
    assert await store.insert([new_event("kept-not")], T0) == [ACCEPTED]
    await store.close()
    reopened = await make_store()
    assert [c.event_id for c in await reopened.claim("tt", 10, T0, 60)] == ["ok", "kept-not"]


def test_codec_round_trips_every_field() -> None:
    event = Event(
        name="Purchase", event_id="ord_1", event_time=1_776_943_000, source=Source.CRM,
        user=User(email=("a" * 64, "b" * 64), phone=("c" * 64,), external_id=("d" * 64,),
                  ip="203.0.113.9", user_agent="UA", locale="de_DE", first_name="e" * 64,
                  last_name="f" * 64, zip_code="0" * 64, city="berlin", state="be", country="de",
                  idfa="1" * 64, idfv="IDFV-1", gaid="2" * 64, att_status="AUTHORIZED",
                  click_ids=(("fbc", "fb.1.1700000000000.AbC"), ("fbp", "fb.1.1700000000000.42"),
                             ("ttclid", "clid"), ("ttp", "ttp"))),
        page=Page(url="https://shop.example/p", referrer="https://tiktok.com"),
        properties={"value": 12.5, "currency": "EUR", "contents": [{"content_id": "sku"}]},
        consent=Consent(marketing=ConsentState.GRANTED, ad_user_data=ConsentState.DENIED,
                        region="DE"),
        session_id="s1", order_source="web", received_at=1_776_943_001.25,
        warnings=(Notice("user.phone", "not a valid phone number; dropped",
                         NoticeKind.DROPPED_VALUE),),
        app=App("343200656", "Shop", "1.2"), ad=Ad(callback="cb", is_retargeting=False),
        lead=Lead("7403", "HubSpot"), device={"platform": "iOS"}, limited_data_use=True,
        test_event_code="TEST1", copies=("shopify",),
        plain=PlainUser(email=("jane@example.com",), phone=("+4917012345678",)),
        hashed_users={"meta": {"em": ["a" * 64], "ph": ["9" * 64]}},
        action_source="phone_call")
    assert decode_event(encode_event(event)) == event
    assert decode_event(encode_event(Event("X", "1", 1))) == Event("X", "1", 1)
    # A field added to Event (or User) later must be added to the codec too, except the
    # plaintext personal keys, which are never written anywhere.
    stored = orjson.loads(encode_event(event))
    assert set(stored) == {f.name for f in fields(Event)} - {"plain"}
    assert b"jane" not in encode_event(event) and decode_event(encode_event(event)).plain is None
    # The click and browser ids each under its own key, as every version wrote them.
    assert set(orjson.loads(encode_event(event))["user"]) == (
        {f.name for f in fields(User)} - {"click_ids"} | {"fbc", "fbp", "ttclid", "ttp"})


def test_codec_reads_bodies_of_version_0_1() -> None:
    old = orjson.dumps({"name": "Lead", "event_id": "e", "event_time": 5, "source": "web",
                        "user": {"email": ["a" * 64], "phone": [], "external_id": [],
                                 "ttclid": None, "ttp": None, "ip": None, "user_agent": None,
                                 "locale": None},
                        "warnings": ["user.phone: not a valid phone number; dropped"]})
    e = decode_event(old)
    assert e.user.email == ("a" * 64,) and e.user.first_name is None
    assert e.warnings == (Notice("user.phone", "not a valid phone number; dropped",
                                 NoticeKind.DROPPED_VALUE),)


async def test_a_held_delivery_is_not_claimed_before_its_time(store: Store) -> None:
    held = Route("tt", "CompletePayment", DeliveryState.PENDING, payload=b"{}",
                 not_before=T0 + 5)
    await store.insert([NewEvent(Event("Purchase", "h1", int(T0)), (held,))], T0)
    assert await store.claim("tt", 10, T0 + 4.9, 60) == []
    assert [c.event_id for c in await store.claim("tt", 10, T0 + 5, 60)] == ["h1"]


async def test_a_later_copy_merges_into_the_pending_first_one(store: Store) -> None:
    seen: list[bytes] = []
    better = Route("tt", "CompletePayment", DeliveryState.PENDING, payload=b'{"merged":1}')

    def merge(body: bytes) -> Merged:
        seen.append(body)
        return Merged(body=encode_event(Event("Purchase", "m1", int(T0), copies=("server",))),
                      routes={"tt": better}, release=True)

    first = Route("tt", "CompletePayment", DeliveryState.PENDING, payload=b'{"first":1}',
                  not_before=T0 + 60)
    await store.insert([NewEvent(Event("Purchase", "m1", int(T0)), (first,))], T0)
    again = NewEvent(Event("Purchase", "m1", int(T0)), (pending(name="CompletePayment"),),
                     merge=merge)
    assert await store.insert([again], T0 + 1) == [MERGED]
    assert decode_event(seen[0]).event_id == "m1"
    # The hold ended (release) and the merged item is what goes out.
    (claimed,) = await store.claim("tt", 10, T0 + 1, 60)
    assert claimed.payload == b'{"merged":1}'
    # Once claimed (in flight), a further copy is a duplicate: nothing is merged into a
    # request already on the wire.
    assert await store.insert([again], T0 + 2) == [DUPLICATE]
    assert len(seen) == 1


async def test_a_copy_that_adds_nothing_stays_a_duplicate(store: Store) -> None:
    await store.insert([new_event("n1")], T0)
    same = NewEvent(Event("Purchase", "n1", int(T0)), (pending(),), merge=lambda body: None)
    assert await store.insert([same], T0 + 1) == [DUPLICATE]


async def test_processes_beat_and_are_counted_by_role(store: Store) -> None:
    a = b = store  # what counts is the process id; the database is shared
    assert await a.heartbeat("p1", "delivery", T0, 30) == 1
    assert await b.heartbeat("p2", "delivery", T0 + 1, 30) == 2  # another process sees it
    assert await b.heartbeat("api1", "api", T0 + 1, 30) == 1  # roles are counted apart
    assert await a.heartbeat("p1", "delivery", T0 + 40, 30) == 1  # p2 fell silent
    await a.leave("p1")
    assert await b.heartbeat("p2", "delivery", T0 + 41, 30) == 1


async def test_waiting_for_work_returns_by_the_timeout(store: Store) -> None:
    started = asyncio.get_running_loop().time()
    await store.wait_for_work(["tt"], 0.05)
    assert asyncio.get_running_loop().time() - started < 5


async def test_copies_queued_together_merge_as_if_one_after_the_other(store: Store) -> None:
    """Inserts waiting for the same commit act as if run in their order: a later copy merges
    into an earlier call's pending first copy, never into a copy of its own call."""
    def merge(body: bytes) -> Merged:
        return Merged(body=body, routes={"tt": pending()}, release=True)

    def copy(event_id: str) -> NewEvent:
        return NewEvent(Event("Purchase", event_id, int(T0)), (pending(),), merge=merge)

    first, later = await asyncio.gather(store.insert([new_event("q1")], T0),
                                        store.insert([copy("q1")], T0))
    assert (first, later) == ([ACCEPTED], [MERGED])
    assert await store.insert([new_event("q2"), copy("q2")], T0) == [ACCEPTED, DUPLICATE]
