"""SessionStore on a real SQLite file: merge on record, lookup order, identity window, pruning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pixelrelay.pipeline.enrich import EnrichedFrom, Lookup, SessionContext
from pixelrelay.sessions import SessionStore
from pixelrelay.store.sqlite import SQLiteStore

DAY = 86400.0
T0 = 1_800_000_000.0


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[SessionStore]:
    store = SQLiteStore(str(tmp_path / "s.db"))
    await store.open()
    yield SessionStore(store, identity_window_s=7 * DAY, retention_s=30 * DAY)
    await store.close()


def hit(sid: str, at: float, **kw: str) -> SessionContext:
    return SessionContext(sid, first_seen=at, last_seen=at, **kw)


async def test_a_session_keeps_its_landing_and_gains_newer_keys(sessions: SessionStore) -> None:
    await sessions.record(hit("s_a", T0, ttclid="E.1", landing_url="https://shop.test/?ttclid=E.1"))
    merged = await sessions.record(hit("s_a", T0 + 60, ttp="2.t", ip="192.0.2.1"))
    assert merged == SessionContext("s_a", ttclid="E.1", ttp="2.t", ip="192.0.2.1",
                                    landing_url="https://shop.test/?ttclid=E.1",
                                    first_seen=T0, last_seen=T0 + 60)
    assert await sessions.get("s_a") == merged


async def test_lookup_prefers_session_then_token_then_recent_identity(
        sessions: SessionStore) -> None:
    assert await sessions.find([Lookup("s_x", (), ())], T0) == [None]  # nothing recorded yet
    for sid, at in (("s_a", T0), ("s_b", T0 + 10), ("s_old", T0 - 30 * DAY)):
        await sessions.record(hit(sid, at, ttclid=f"E.{sid}"))
    await sessions.link_token("cart_token", "c1", "s_a", T0)
    await sessions.link_identities([("s_a", ("email:h",)), ("s_b", ("email:h",)),
                                    ("s_old", ("external_id:o",))], T0)
    await sessions.link_identities([("s_old", ("email:stale",))], T0 - 8 * DAY)
    found = await sessions.find([
        Lookup("s_b", (("cart_token", "c1"),), ("email:h",)),
        Lookup("s_missing", (("cart_token", "c1"),), ()),
        Lookup(None, (("checkout_token", "c1"),), ("email:h",)),  # kinds do not mix
        Lookup(None, (), ("external_id:o",)),
        Lookup(None, (), ("email:stale",)),  # linked 8 days ago: outside the window
        Lookup(None, (), ()),
    ], T0 + 20)
    assert [(f[0].session_id, f[1]) if f else None for f in found] == [
        ("s_b", EnrichedFrom.SESSION), ("s_a", EnrichedFrom.LINK),
        ("s_b", EnrichedFrom.IDENTITY), ("s_old", EnrichedFrom.IDENTITY), None, None]


async def test_expired_sessions_and_links_are_pruned(sessions: SessionStore) -> None:
    await sessions.record(hit("s_old", T0, ttclid="E.old"))
    await sessions.link_token("cart_token", "c_old", "s_old", T0)
    sessions._hits = 0  # the next record prunes, as the first one after a start does
    await sessions.record(hit("s_new", T0 + 31 * DAY))
    assert await sessions.get("s_old") is None
    assert await sessions.find([Lookup(None, (("cart_token", "c_old"),), ())],
                               T0 + 31 * DAY) == [None]
