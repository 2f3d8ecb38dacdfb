"""Which finished deliveries replay sends again, and why it skips the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelrelay.clock import FakeClock
from pixelrelay.destinations import build_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.model import DeliveryState, Route
from pixelrelay.ops.replay import STATE_CHOICES, ReplayOptions, Skip, decide, replay
from pixelrelay.store import SQLiteStore
from pixelrelay.store.base import REPLAYED_NOTE
from pixelrelay.store.rows import Candidate
from tests.conftest import make_settings
from tests.support import sqlite_exec

NOW = 1_776_943_380.0
DAY = 86400


def cand(state: DeliveryState = DeliveryState.DEAD, dest_event: str = "AddToCart",
         delivered_at: float | None = None, superseded: bool = False) -> Candidate:
    return Candidate(1, "e1", dest_event, state, delivered_at, superseded, b"{}")


def route(state: DeliveryState = DeliveryState.PENDING, dest_event: str = "AddToCart") -> Route:
    return Route("tiktok", dest_event, state, payload=b"{}" if state == "pending" else None)


def test_a_dead_event_inside_the_window_is_requeued() -> None:
    assert decide(cand(), int(NOW - DAY), route(), NOW, 7) is None


def test_events_past_the_destination_window_are_skipped() -> None:
    assert decide(cand(), int(NOW - 8 * DAY), route(), NOW, 7) is Skip.TOO_OLD
    assert decide(cand(), int(NOW - 8 * DAY), route(), NOW, 28) is None


@pytest.mark.parametrize(("state", "skip"), [(DeliveryState.FILTERED, Skip.FILTERED),
                                             (DeliveryState.SUPPRESSED, Skip.SUPPRESSED)])
def test_current_config_filters_and_consent_still_apply(state: DeliveryState, skip: Skip) -> None:
    assert decide(cand(), int(NOW), route(state), NOW, 7) is skip


def test_a_later_copy_holding_the_event_id_wins() -> None:
    assert decide(cand(superseded=True), int(NOW), route(), NOW, 7) is Skip.SUPERSEDED


def test_delivered_events_are_resent_only_where_tiktok_cannot_count_them_twice() -> None:
    delivered = DeliveryState.DELIVERED
    # Within 48 h TikTok drops the repeat.
    assert decide(cand(delivered, delivered_at=NOW - 3600), int(NOW - 3600), route(), NOW,
                  7) is None
    old = cand(delivered, delivered_at=NOW - 3 * DAY)
    assert decide(old, int(NOW - 3 * DAY), route(), NOW, 7) is Skip.DELIVERED_LONG_AGO
    # A fixed mapping makes it a different TikTok event: send it.
    assert decide(old, int(NOW - 3 * DAY), route(dest_event="SubmitForm"), NOW, 7) is None


def test_state_choices_never_include_rows_still_on_their_way() -> None:
    assert STATE_CHOICES["dead"] == (DeliveryState.DEAD,)
    for states in STATE_CHOICES.values():
        assert DeliveryState.PENDING not in states and DeliveryState.IN_FLIGHT not in states


async def test_requeue_resets_the_row_and_keeps_the_event_id(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    wrong = make_settings(tmp_path / "r.db", "http://127.0.0.1:9", event_map={"Lead": "BadLead"})
    fixed = make_settings(tmp_path / "r.db", "http://127.0.0.1:9")
    store = SQLiteStore(str(tmp_path / "r.db"))
    await store.open()
    try:
        ingest = Ingestor(wrong, store, [build_destination(d) for d in wrong.destinations], clock)
        await ingest.accept([{"event": "Lead", "event_id": "l1"},
                             {"event": "AddToCart", "event_id": "a1"},
                             {"event": "Lead", "event_id": "l2"}])
        sqlite_exec(tmp_path / "r.db",
                    "UPDATE deliveries SET state = 'dead', dead_reason = 'rejected', attempts = 3,"
                    " last_code = 40002, next_attempt_at = NULL")
        clock.advance(3600)
        # l2 came in again after the fix, under the new name: replay must not send it twice.
        again = Ingestor(fixed, store, [build_destination(d) for d in fixed.destinations], clock)
        assert (await again.accept([{"event": "Lead", "event_id": "l2"}])).accepted == 1

        summary = await replay(store, fixed, ReplayOptions("tiktok"), clock)
        assert (summary.matched, summary.requeued, summary.renamed) == (3, 2, 2)
        assert summary.skipped == {Skip.ALREADY_QUEUED: 1}
        rows = sqlite_exec(
            tmp_path / "r.db",
            "SELECT event_id, state, dest_event, attempts, created_at, last_code, last_message,"
            " dead_reason, next_attempt_at, payload FROM deliveries ORDER BY id")
        l1 = rows[0]
        assert l1[:8] == ("l1", "pending", "SubmitForm", 0, clock.now(), None, REPLAYED_NOTE,
                          None)
        assert l1[8] == clock.now() and b'"event":"SubmitForm"' in l1[9]
        assert [r[1] for r in rows] == ["pending", "pending", "dead", "pending"]
        # The key follows the new name and restarts its 48 h: the same event now is a duplicate.
        assert (await again.accept([{"event": "Lead", "event_id": "l1"}])).duplicates == 1

        dry = await replay(store, fixed, ReplayOptions("tiktok", dry_run=True), clock)
        assert (dry.matched, dry.requeued) == (1, 0)  # l2's old row, counted as a real run would
        assert dry.skipped == {Skip.ALREADY_QUEUED: 1}
        assert sqlite_exec(tmp_path / "r.db",
                           "SELECT state FROM deliveries WHERE id = 3") == [("dead",)]
    finally:
        await store.close()


async def test_window_and_event_name_select_by_accept_time_and_either_name(
        tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    settings = make_settings(tmp_path / "w.db", "http://127.0.0.1:9")
    store = SQLiteStore(str(tmp_path / "w.db"))
    await store.open()
    try:
        ingest = Ingestor(settings, store, [build_destination(d)
                                            for d in settings.destinations], clock)
        await ingest.accept([{"event": "Lead", "event_id": "early"}])
        clock.advance(2 * 3600)
        await ingest.accept([{"event": "Lead", "event_id": "late"},
                             {"event": "AddToCart", "event_id": "cart"}])
        sqlite_exec(tmp_path / "w.db", "UPDATE deliveries SET state = 'dead'")

        async def matched(**kw: str) -> int:
            opts = ReplayOptions("tiktok", dry_run=True, **kw)  # type: ignore[arg-type]
            return (await replay(store, settings, opts, clock)).matched

        assert await matched() == 3
        assert await matched(since="1h") == 2
        assert await matched(until="1h") == 1
        assert await matched(event="Lead") == 2
        assert await matched(event="SubmitForm") == 2  # the TikTok name works too
        assert await matched(since="1h", event="AddToCart") == 1
        assert await matched(state="all") == 3
    finally:
        await store.close()
