"""How stored minutes add up (store/rollup.py): ranges, sums, trends, what a pass computes."""

from __future__ import annotations

import itertools
from dataclasses import fields

from hypothesis import given
from hypothesis import strategies as st

from pixelrelay.store import rollup
from pixelrelay.store.codec import MATCH_KEY_BITS
from pixelrelay.store.rows import QueueRow, WindowRows

T = 1_776_943_380.0  # a whole minute


KEYS = len(MATCH_KEY_BITS)


def test_every_window_field_is_summed_or_read_exactly() -> None:
    # latencies are a sample read exactly; queues are derived from the summed deliveries.
    assert set(rollup.RANGE_FIELDS) | {"latencies", "queues"} == {
        f.name for f in fields(WindowRows)}


def test_a_queue_is_the_window_s_waiting_rows_and_those_from_before_it() -> None:
    window = WindowRows(deliveries=[
        ("tt", "Purchase", "CompletePayment", "pending", None, 7),  # in flight included
        ("tt", "Lead", "SubmitForm", "pending", None, 3),
        ("tt", "Lead", "SubmitForm", "delivered", None, 50),
        ("tt2", "Lead", "SubmitForm", "dead", "rejected", 4)])
    heads = [("tt", 5, 2, T - 3600.0, True, "40105 token", T - 60.0),
             ("tt2", 0, 0, None, False, "stale", T),
             ("gone", 1, 1, T - 7200.0, False, None, None)]
    assert rollup.queues(window, heads) == [
        QueueRow("tt", 5 + 7 + 3 - 2, 2, T - 3600.0, True, "40105 token", T - 60.0),
        QueueRow("tt2", 0, 0, None, False, None, None),
        QueueRow("gone", 0, 1, T - 7200.0, False, None, None)]


def test_uncovered_is_the_part_minute_the_gaps_and_the_tail() -> None:
    m = rollup.minute_of(T)
    since = T + 17.5
    assert rollup.uncovered(since, [m + 1, m + 2, m + 4]) == [
        (since, T + 60), (T + 180, T + 240), (T + 300, rollup.OPEN_END)]
    assert rollup.uncovered(T, [m - 3, m]) == [(T + 60, rollup.OPEN_END)]  # older ignored
    assert rollup.uncovered(T, []) == [(T, rollup.OPEN_END)]


@given(st.sets(st.integers(0, 40)), st.floats(0, 59.9))
def test_stored_and_uncovered_minutes_tile_the_window(stored: set[int], offset: float) -> None:
    base = rollup.minute_of(T)
    since = T + offset
    ranges = rollup.uncovered(since, {base + m for m in stored})
    pieces = sorted(ranges + [rollup.bounds(base + m) for m in stored
                              if base + m >= rollup.first_whole_minute(since)])
    assert pieces[0][0] == since and pieces[-1][1] == rollup.OPEN_END
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


def test_merge_sums_counts_and_keeps_the_least_name() -> None:
    a = WindowRows(accepted=[("Purchase", 2)], duplicates=[("Purchase", 1, 0)],
                   coverage=[("Purchase", "Purchase", 2, *[1] * KEYS)],
                   dead=[("tt", "Lead", "rejected", None, None, 1)])
    b = WindowRows(accepted=[("Purchase", 3), ("Lead", 1)], duplicates=[("Purchase", 2, None)],
                   coverage=[("Purchase", "CompletePayment", 1, *[0] * KEYS)],
                   dead=[("tt", "Lead", "rejected", None, None, 4)])
    out = rollup.merge([a, b])
    assert out.accepted == [("Lead", 1), ("Purchase", 5)]
    assert out.duplicates == [("Purchase", 3, 0)]
    assert out.coverage == [("Purchase", "CompletePayment", 3, *[1] * KEYS)]
    assert out.dead == [("tt", "Lead", "rejected", None, None, 5)]


def test_a_minute_round_trips_through_its_stored_form() -> None:
    rows = WindowRows(deliveries=[("tt", "Lead", "Lead", "dead", None, 2)],
                      trend_received=[(rollup.minute_of(T), 7)])
    assert rollup.decode(rollup.encode(rows)) == rows
    assert rollup.encode(WindowRows()) is None and rollup.decode(None) == WindowRows()


def test_a_minute_stored_before_a_key_was_counted_reads_it_as_zero() -> None:
    """Minutes rolled up when 12 match keys were counted (before fbc and fbp had bits) still
    add up with new ones: their events carry no bit for the new keys, so a scan counts 0."""
    old = b'{"coverage": [["Purchase", "CompletePayment", 4, ' + b", ".join([b"1"] * 12) + b"]]}"
    new = WindowRows(coverage=[("Purchase", "CompletePayment", 1, *[1] * KEYS)])
    assert rollup.decode(old).coverage == [("Purchase", "CompletePayment", 4, *[1] * 12,
                                             *[0] * (KEYS - 12))]
    assert rollup.merge([rollup.decode(old), new]).coverage == [
        ("Purchase", "CompletePayment", 5, *[2] * 12, *[1] * (KEYS - 12))]


def test_trends_fall_in_buckets_from_the_windows_first_minute() -> None:
    m = rollup.minute_of(T)
    per_minute = [(m, 1), (m + 4, 2), (m + 5, 3), (m + 12, 4)]
    assert rollup.buckets(per_minute, T + 30, 300) == [(0, 3), (1, 3), (2, 4)]


def test_a_pass_computes_settled_minutes_missing_or_dirty_oldest_first() -> None:
    now = T + 30
    settled = rollup.minute_of(now - rollup.SETTLE_S)
    oldest = rollup.minute_of(now - rollup.HORIZON_S)
    all_stored = range(oldest, settled)
    todo, first = rollup.to_compute(now, all_stored, [settled - 5, settled, oldest - 9], 10,
                                    first_row=0.0)
    assert (todo, first) == ([settled - 5], oldest)  # unsettled and too old wait / go
    todo, _ = rollup.to_compute(now, [], [], 3, first_row=0.0)
    assert todo == [oldest, oldest + 1, oldest + 2]


def test_the_empty_minutes_before_the_first_row_are_not_computed() -> None:
    """A new database stores nothing for the week before its first event (10,080 empty
    minutes its first requests would wait behind); a dirty minute is computed all the same."""
    now = T + 30
    settled = rollup.minute_of(now - rollup.SETTLE_S)
    assert rollup.to_compute(now, [], [], 100, first_row=None) == (
        [], rollup.minute_of(now - rollup.HORIZON_S))
    first = float((settled - 3) * 60 + 17)
    assert rollup.to_compute(now, [], [], 100, first_row=first)[0] == [
        settled - 3, settled - 2, settled - 1]
    assert rollup.to_compute(now, [], [settled - 50], 100, first_row=None)[0] == [settled - 50]


def test_an_hour_is_stored_only_whole_and_clean() -> None:
    one = rollup.encode(WindowRows(accepted=[("Lead", 1)]))
    whole = [(0, one)] * 59 + [(0, None)]
    assert rollup.whole_hour(whole) == (True, rollup.encode(WindowRows(accepted=[("Lead", 59)])))
    assert rollup.whole_hour(whole[:-1]) == (False, None)  # a minute not stored yet
    assert rollup.whole_hour([(1, b) for _d, b in whole]) == (False, None)  # one is dirty
    assert rollup.minutes_of_hours([2])[::59] == [120, 179]
    assert rollup.first_whole_hour(T + 1) == rollup.minute_of(T) // 60 + 1
