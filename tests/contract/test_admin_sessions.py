"""Admin sessions in the store: open, valid until expiry or close, kept across restarts."""

from __future__ import annotations

from tests.contract.conftest import StoreFactory
from tests.contract.test_store_contract import T0


async def test_a_session_is_valid_until_it_expires_or_is_closed(
        make_store: StoreFactory) -> None:
    one = await make_store()
    await one.open_admin_session("h1", T0, T0 + 60)
    await one.open_admin_session("h2", T0, T0 + 60)
    await one.close()
    other = await make_store()  # the next process on the same database
    assert await other.admin_session_valid("h1", T0 + 59)
    assert not await other.admin_session_valid("h1", T0 + 60)  # expired
    assert not await other.admin_session_valid("nope", T0)
    await other.close_admin_session("h1")
    assert not await other.admin_session_valid("h1", T0)
    assert await other.admin_session_valid("h2", T0)  # closing one ends only that one
    await other.close_admin_session("h1")  # closing twice is not an error


async def test_opening_a_session_prunes_expired_ones(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.open_admin_session("old", T0, T0 + 10)
    await store.open_admin_session("new", T0 + 20, T0 + 80)
    assert not await store.admin_session_valid("old", T0 + 5)  # pruned, not only expired
    assert await store.admin_session_valid("new", T0 + 21)
