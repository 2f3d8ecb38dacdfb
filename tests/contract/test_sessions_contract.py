"""The Sessions contract on every store: merge on record, lookup order, identity window,
consent kept with the session, pruning."""

from __future__ import annotations

import asyncio

from pixelrelay.model import Consent, ConsentState, declared_ids
from pixelrelay.pipeline.enrich import EnrichedFrom, Lookup, SessionContext
from pixelrelay.store.base import Store
from tests.contract.conftest import StoreFactory

DAY = 86400.0
T0 = 1_800_000_000.0
RETENTION = 30 * DAY
WINDOW = 7 * DAY


def hit(sid: str, at: float, **kw: str) -> SessionContext:
    """A hit; the click and browser ids (ttclid, ttp...) among `kw` go into its click_ids."""
    ids = {k: kw.pop(k) for k in list(kw) if k in declared_ids()}
    return SessionContext(sid, first_seen=at, last_seen=at, click_ids=ids, **kw)


async def test_a_session_keeps_its_landing_and_gains_newer_keys(store: Store) -> None:
    await store.record_session(hit("s_a", T0, ttclid="E.1",
                                   landing_url="https://shop.test/?ttclid=E.1"), RETENTION)
    merged = await store.record_session(hit("s_a", T0 + 60, ttp="2.t", ip="192.0.2.1"),
                                        RETENTION)
    assert merged == SessionContext("s_a", ip="192.0.2.1",
                                    landing_url="https://shop.test/?ttclid=E.1", first_seen=T0,
                                    last_seen=T0 + 60, click_ids={"ttclid": "E.1", "ttp": "2.t"})
    assert await store.get_session("s_a") == merged


async def test_lookup_prefers_session_then_token_then_recent_identity(
        store: Store) -> None:
    # nothing recorded yet
    assert await store.find_sessions([Lookup("s_x", (), ())], T0 - WINDOW) == [None]
    for sid, at in (("s_a", T0), ("s_b", T0 + 10), ("s_old", T0 - 30 * DAY)):
        await store.record_session(hit(sid, at, ttclid=f"E.{sid}"), 60 * DAY)
    await store.link_token("cart_token", "c1", "s_a", T0)
    await store.link_identities([("s_a", ("email:h",)), ("s_b", ("email:h",)),
                                 ("s_old", ("external_id:o",))], T0)
    await store.link_identities([("s_old", ("email:stale",))], T0 - 8 * DAY)
    found = await store.find_sessions([
        Lookup("s_b", (("cart_token", "c1"),), ("email:h",)),
        Lookup("s_missing", (("cart_token", "c1"),), ()),
        Lookup(None, (("checkout_token", "c1"),), ("email:h",)),  # kinds do not mix
        Lookup(None, (), ("external_id:o",)),
        Lookup(None, (), ("email:stale",)),  # linked 8 days ago: outside the window
        Lookup(None, (), ()),
    ], T0 + 20 - WINDOW)
    assert [(f[0].session_id, f[1]) if f else None for f in found] == [
        ("s_b", EnrichedFrom.SESSION), ("s_a", EnrichedFrom.LINK),
        ("s_b", EnrichedFrom.IDENTITY), ("s_old", EnrichedFrom.IDENTITY), None, None]


async def test_expired_sessions_and_links_are_pruned(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.record_session(hit("s_old", T0, ttclid="E.old"), RETENTION)
    await store.link_token("cart_token", "c_old", "s_old", T0)
    await store.close()
    store = await make_store()  # the first hit after a start prunes
    await store.record_session(hit("s_new", T0 + 31 * DAY), RETENTION)
    assert await store.get_session("s_old") is None
    assert await store.find_sessions([Lookup(None, (("cart_token", "c_old"),), ())],
                                     T0 + 31 * DAY - WINDOW) == [None]


async def test_the_latest_consent_answer_is_kept_with_the_session(store: Store) -> None:
    denied = Consent(marketing=ConsentState.DENIED, region="DE")
    await store.record_session(SessionContext("s_c", first_seen=T0, last_seen=T0,
                                              consent=denied, consent_at=T0,
                                              consent_source="consent_mode"), RETENTION)
    await store.record_session(hit("s_c", T0 + 5, ttclid="E.c"), RETENTION)  # no answer
    got = await store.get_session("s_c")
    assert got is not None and got.click_ids.get("ttclid") == "E.c"
    assert (got.consent, got.consent_at, got.consent_source) == (denied, T0, "consent_mode")


async def test_click_ids_are_kept_as_one_map_and_found_by_every_lookup(store: Store) -> None:
    fbc, fbp = "fb.1.1800000000000.AbC", "fb.1.1700000000000.42"
    await store.record_session(SessionContext("s_k", first_seen=T0, last_seen=T0,
                                              click_ids={"fbc": fbc, "fbp": fbp}), RETENTION)
    # A later hit without them keeps them; a new click replaces only its own id.
    await store.record_session(hit("s_k", T0 + 5, ttclid="E.k"), RETENTION)
    got = await store.get_session("s_k")
    assert got is not None and got.click_ids == {"fbc": fbc, "fbp": fbp, "ttclid": "E.k"}
    newer = "fb.1.1800000009000.New"
    await store.record_session(SessionContext("s_k", first_seen=T0 + 9, last_seen=T0 + 9,
                                              click_ids={"fbc": newer}), RETENTION)
    await store.link_token("cart_token", "c_k", "s_k", T0)
    await store.link_identities([("s_k", ("email:k",))], T0)
    found = await store.find_sessions([Lookup("s_k", (), ()),
                                       Lookup(None, (("cart_token", "c_k"),), ()),
                                       Lookup(None, (), ("email:k",))], T0 - WINDOW)
    assert [f[0].click_ids if f else None for f in found] == [
        {"fbc": newer, "fbp": fbp, "ttclid": "E.k"}] * 3
    await store.record_session(hit("s_none", T0), RETENTION)
    none = await store.get_session("s_none")
    assert none is not None and none.click_ids == {}


async def test_concurrent_lookups_answer_as_alone_each_with_its_own_cut_off(
        store: Store) -> None:
    """Requests look sessions up at once (PostgreSQL makes one statement of them): each
    gets its own answers, its identity links judged by its own window."""
    await store.record_session(hit("s_1", T0, ttclid="E.1"), 60 * DAY)
    await store.record_session(hit("s_2", T0 + 1, ttclid="E.2"), 60 * DAY)
    await store.link_identities([("s_2", ("email:two",))], T0 - 3 * DAY)
    asks = [([Lookup("s_1", (), ()), Lookup(None, (), ("email:two",))], T0 - WINDOW),
            ([Lookup(None, (), ("email:two",))], T0 - DAY),  # the link is older than this
            ([Lookup("s_none", (), ())], T0 - WINDOW),
            ([Lookup("s_2", (), ()), Lookup(None, (), ())], T0 - WINDOW)]
    alone = [await store.find_sessions(lookups, since) for lookups, since in asks]
    together = await asyncio.gather(*(store.find_sessions(lookups, since)
                                      for lookups, since in asks))
    assert together == alone
    assert [[f[0].session_id if f else None for f in answer] for answer in together] == [
        ["s_1", "s_2"], [None], [None], ["s_2", None]]
    finder = getattr(store, "_finder", None)
    if finder is not None:  # PostgreSQL: the four concurrent calls took fewer statements
        before = finder.runs
        await asyncio.gather(*(store.find_sessions(lookups, since) for lookups, since in asks))
        assert finder.runs - before < len(asks)


async def test_concurrent_identity_links_all_land(store: Store) -> None:
    """Requests link identities at once (PostgreSQL writes them in one transaction): every
    link is found, the latest time of a link made twice kept."""
    for n in range(4):
        await store.record_session(hit(f"s_l{n}", T0 + n), 60 * DAY)
    links = [([(f"s_l{n}", (f"email:l{n}",))], T0 + n) for n in range(4)]
    links.append(([("s_l0", ("email:l0",))], T0 - 9 * DAY))  # an older copy of the first
    links.append(([("s_l3", ("email:l3",))], T0 + 40))
    await asyncio.gather(*(store.link_identities(pairs, at) for pairs, at in links))
    found = await store.find_sessions([Lookup(None, (), (f"email:l{n}",)) for n in range(4)],
                                      T0 - WINDOW)
    # email:l0's older copy came last: the link is dated 9 days back, out of the window.
    assert [f[0].session_id if f else None for f in found] == [None, "s_l1", "s_l2", "s_l3"]
    linker = getattr(store, "_linker", None)
    if linker is not None:  # PostgreSQL: the six concurrent calls took fewer transactions
        before = linker.runs
        await asyncio.gather(*(store.link_identities(pairs, at) for pairs, at in links))
        assert linker.runs - before < len(links)
