"""Reconciliation: reading orders, finding an event's order id, and why an order is missing."""

from __future__ import annotations

import dataclasses

import pytest

from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.model import DeliveryState
from pixelrelay.ops.gap import Order, classify, order_id_of, purchase_names, read_orders, reconcile
from pixelrelay.ops.window import Window
from pixelrelay.secret import Secret
from pixelrelay.store.rows import PurchaseRecord, RejectedOrder

NOW = 1_776_943_380.0
REC = PurchaseRecord(event_id="ord_1001_complete_payment", name="Purchase",
                     dest_event="CompletePayment", state=DeliveryState.DELIVERED, reason=None,
                     dead_reason=None, attempts=1, last_code=0, last_message="OK",
                     event_time=int(NOW), received_at=NOW, order_id=None, value=10.0)


def rec(**kw: object) -> PurchaseRecord:
    return dataclasses.replace(REC, **kw)  # type: ignore[arg-type]


def test_orders_csv_needs_order_id_and_names_bad_lines() -> None:
    text = ["id,order_id,created_at,value\n", "x,1,2026-04-23T10:00:00Z,9.5\n",
            "x,2,1776900000,\n", "x,,,\n", "x,3,soon,\n", "x,4,,ten\n", "x,1,,\n", "\n",
            "x,5\n"]
    orders, problems = read_orders(text, NOW)
    assert orders == [Order("1", 2, NOW - 4980, 9.5), Order("2", 3, 1776900000.0, None),
                      Order("5", 9)]
    assert [p.field for p in problems] == ["line 4 order_id", "line 5 created_at",
                                           "line 6 value", "line 7 order_id"]
    with pytest.raises(Exception, match="order_id column"):
        read_orders(["id,total\n"], NOW)


def test_order_id_from_properties_else_from_the_derived_event_id() -> None:
    assert order_id_of(rec()) == "1001"
    assert order_id_of(rec(order_id="A-7", event_id="random")) == "A-7"
    assert order_id_of(rec(event_id="ord_12_34_purchase", dest_event="Purchase")) == "12_34"
    assert order_id_of(rec(event_id="ord__complete_payment")) is None
    assert order_id_of(rec(event_id="uuid-1")) is None


def test_purchase_names_follow_the_destination_mapping() -> None:
    plain = tiktok_destination(name="t", pixel_code="P", access_token=Secret("x"))
    assert {"Purchase", "CompletePayment", "Order Completed"} <= set(purchase_names(plain))
    mapped = dataclasses.replace(plain, event_map={"Checkout Done": "Purchase"})
    assert "Checkout Done" in purchase_names(mapped)


@pytest.mark.parametrize(("records", "category", "reason"), [
    ([], "never_received", "never received"),
    ([rec(state=DeliveryState.SUPPRESSED, reason="consent: marketing denied")], "suppressed",
     "suppressed: consent: marketing denied"),
    ([rec(state=DeliveryState.FILTERED, reason="filter: event in exclude_events")], "filtered",
     "filtered: filter: event in exclude_events"),
    ([rec(state=DeliveryState.DEAD, dead_reason="rejected", last_code=40002,
          last_message="data.0.event: bad")], "rejected",
     "rejected by TikTok: 40002 data.0.event: bad"),
    ([rec(state=DeliveryState.DEAD, dead_reason="expired", last_code=50000,
          last_message="System error")], "dead", "dead: expired; last answer: 50000"),
    ([rec(state=DeliveryState.PENDING, attempts=3, last_code=40100, last_message="QPS")],
     "pending", "pending: retrying after 3 attempt(s); last answer: 40100 QPS"),
    ([rec(state=DeliveryState.PENDING, attempts=0)], "pending", "pending: queued"),
    ([rec(state=DeliveryState.DEAD, dead_reason="rejected"), rec()], "delivered", "delivered"),
])
def test_classify_says_why(records: list[PurchaseRecord], category: str, reason: str) -> None:
    got_category, got_reason, _ = classify(records)
    assert got_category == category and got_reason.startswith(reason)


def test_an_order_refused_at_ingest_says_why() -> None:
    refused = RejectedOrder("1002", "Purchase", "properties.value", "must be a number", NOW)
    assert classify([], refused) == (
        "rejected_ingest", "rejected at ingest: properties.value: must be a number", "")
    # A delivered copy speaks for the order even if another was refused.
    assert classify([rec()], refused)[0] == "delivered"


def test_reconcile_matches_misses_and_extras_within_the_window() -> None:
    orders = [Order("1001", 2, NOW, 12.0), Order("1002", 3, NOW), Order("1003", 4, NOW - 9e5),
              Order("1004", 5)]
    records = [rec(), rec(event_id="ord_2001_complete_payment"),
               rec(event_id="ord_2002_complete_payment", event_time=int(NOW - 9e5)),
               rec(event_id="ord_2003_complete_payment", state=DeliveryState.DEAD)]
    rows = reconcile(orders, records, Window(NOW - 3600, NOW + 1))
    got = {r.order_id: (r.status, r.category) for r in rows}
    assert got == {"1001": ("matched", "delivered"), "1002": ("missing", "never_received"),
                   "1004": ("missing", "never_received"), "2001": ("extra", "delivered")}
    assert "value differs (order 12.00, event 10.00)" in rows[0].reason
    assert rows[0].event_value == 10.0
    assert reconcile([], [], Window()) == []
