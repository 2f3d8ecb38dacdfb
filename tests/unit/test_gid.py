"""Shopify global ids become the plain ids of its webhooks, wherever an id is read."""

from __future__ import annotations

import pytest

from pixelrelay.destinations.tiktok.mapping import EventNames
from pixelrelay.pipeline.gid import plain_id
from pixelrelay.pipeline.parse import parse_event

NOW = 1776943400.0


@pytest.mark.parametrize(("given", "plain"), [
    ("gid://shopify/OrderIdentity/5633837583468", "5633837583468"),
    ("gid://shopify/Order/5633837583468", "5633837583468"),
    ("gid://shopify/Cart/c1-abc123DEF?key=9f8e7d", "c1-abc123DEF"),
    ("ord_gid://shopify/OrderIdentity/5633837583468_complete_payment",
     "ord_5633837583468_complete_payment"),
    ("5633837583468", "5633837583468"), ("cart-token-1", "cart-token-1"),
])
def test_global_ids_become_plain(given: str, plain: str) -> None:
    assert plain_id(given) == plain


def test_an_order_given_as_a_global_id_derives_the_webhooks_event_id() -> None:
    for order_id in ("gid://shopify/OrderIdentity/5633837583468", 5633837583468):
        e = parse_event({"event": "Purchase", "properties": {
            "order_id": order_id, "cart_token": "gid://shopify/Cart/tok9?key=k"}}, now=NOW,
            dest_name=EventNames()).event
        assert e is not None and e.event_id == "ord_5633837583468_complete_payment"
        assert e.properties["order_id"] == "5633837583468"
    given = parse_event({"event": "Purchase", "event_id":
                         "ord_gid://shopify/OrderIdentity/77_complete_payment"}, now=NOW).event
    assert given is not None and given.event_id == "ord_77_complete_payment"
