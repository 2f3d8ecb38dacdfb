"""Batch planning: one batch_key per request, at most batch_size, halves for bisection."""

from __future__ import annotations

import pytest

from pixelrelay.delivery.planner import Batch, plan, split, still_suspect
from pixelrelay.destinations.base import OutcomeKind
from pixelrelay.store.base import Claimed


def claimed(i: int, key: str = "web", suspect: bool = False) -> Claimed:
    return Claimed(i, f"e{i}", "CompletePayment", key, b"{}", 0, 0.0, "lease", suspect=suspect)


def ids(batch: Batch) -> list[int]:
    return [c.delivery_id for c in batch.items]


def test_groups_by_batch_key_and_caps_size_keeping_order() -> None:
    rows = [claimed(1), claimed(2, "app"), claimed(3), claimed(4), claimed(5, "app")]
    batches = plan(rows, 2)
    assert [(b.batch_key, ids(b)) for b in batches] == [
        ("web", [1, 3]), ("web", [4]), ("app", [2, 5])]


def test_nothing_claimed_plans_nothing() -> None:
    assert plan([], 1000) == []


def test_split_halves_until_single_events() -> None:
    left, right = split(Batch("web", tuple(claimed(i) for i in range(5))))
    assert (ids(left), ids(right)) == ([0, 1], [2, 3, 4])
    assert left.batch_key == right.batch_key == "web"
    assert left.suspect and right.suspect  # either may hold the refused event
    with pytest.raises(ValueError):
        split(Batch("web", (claimed(1),)))


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        plan([claimed(1)], 0)


def test_suspect_rows_travel_apart_from_the_others_of_their_key() -> None:
    rows = [claimed(1), claimed(2, suspect=True), claimed(3), claimed(4, suspect=True),
            claimed(5, "app", suspect=True)]
    assert [(b.batch_key, b.suspect, ids(b)) for b in plan(rows, 1000)] == [
        ("web", False, [1, 3]), ("web", True, [2, 4]), ("app", True, [5])]


def test_a_failed_half_stays_suspect_unless_its_sibling_was_refused() -> None:
    # Sibling refused: the refused event is there; this half retries as ordinary rows.
    assert not still_suspect(OutcomeKind.PERMANENT)
    # Sibling delivered: the refused event is here. Sibling failed too, or not sent (paused):
    # it may be in either, so both stay suspect and are split before they are sent again.
    assert still_suspect(OutcomeKind.DELIVERED)
    assert still_suspect(OutcomeKind.RETRY)
    assert still_suspect(None)
