"""Shopify order/checkout -> SPEC §3.3 event mapping, topic routing and the HMAC check."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelrelay.destinations.tiktok.mapping import EventNames, default_tiktok_name
from pixelrelay.pipeline import nesting
from pixelrelay.pipeline.parse import parse_event
from pixelrelay.sources.shopify_map import (
    ShopifyPayloadError,
    exact_id,
    hmac_valid,
    ignore_reason,
    order_to_event,
)
from tests.fuzz.strategies import FUZZ, dumps, shopify_orders

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders-create.json"
TIKTOK_NAMES = default_tiktok_name  # the names a TikTok destination derives ids with
NOW = 1_776_943_380.0
BIG_ID = 820982911946154508  # 18 digits: a float would turn it into ...4500


def order(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(orjson.loads(FIXTURE.read_bytes()))
    doc.update(changes)
    return doc


def purchase(doc: dict[str, Any], content_id: str = "sku") -> dict[str, Any]:
    event = order_to_event(doc, "orders/create", content_id, NOW, dest_name=TIKTOK_NAMES)
    assert event is not None
    return event


def test_hmac_test_vector() -> None:
    body = b'{"id":820982911946154508,"email":"jon@example.com"}'
    good = "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
    assert hmac_valid(body, "hush", good)
    assert not hmac_valid(body, "hush2", good)
    assert not hmac_valid(body + b" ", "hush", good)  # raw bytes, not re-encoded JSON
    assert not hmac_valid(body, "hush", None)
    assert not hmac_valid(body, "hush", "")
    assert not hmac_valid(body, "", good)
    assert not hmac_valid(body, "hush", "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8")
    assert not hmac_valid(body, "hush", "ünïcode")


def test_fixture_maps_to_purchase() -> None:
    event = purchase(order())
    assert event["event"] == "Purchase"
    assert event["event_id"] == "ord_450789469_complete_payment"
    assert event["timestamp"] == 1199980800  # 2008-01-10T11:00:00-05:00
    assert event["source"] == "web" and event["order_source"] == "web"
    props = event["properties"]
    assert props["value"] == 409.94 and props["currency"] == "USD"
    assert props["order_id"] == "450789469"
    assert props["content_type"] == "product" and props["num_items"] == 3
    assert props["contents"][0] == {"content_id": "IPOD2008GREEN", "quantity": 1,
                                    "price": 199.0, "content_name": "IPod Nano - 8gb"}
    assert [c["content_id"] for c in props["contents"]] == [
        "IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"]
    assert props["cart_token"] == "68778783ad298f1c80c3bafcddeea02f"
    assert "checkout_token" not in props  # null in the fixture
    user = event["user"]
    assert user["email"] == "bob.norman@hostmail.com"
    assert user["external_id"] == "207119551"
    # 555-625-1199 (fictional, so "possible" but not "valid" to phonenumbers) is kept in
    # E.164; the pipeline hashes it and counts it as unverified.
    assert user["phone"] == "+15556251199"
    # The billing address gives names, zip and place, and its country is the consent region.
    assert {k: user[k] for k in ("first_name", "last_name", "zip_code", "city", "state",
                                 "country")} == {
        "first_name": "Bob", "last_name": "Norman", "zip_code": "40202", "city": "Louisville",
        "state": "KY", "country": "US"}
    # landing_site has no ttclid; client_details.browser_ip is 0.0.0.0; user_agent is null
    assert set(user) == {"email", "external_id", "phone", "first_name", "last_name",
                         "zip_code", "city", "state", "country"}
    assert "session_id" not in event


def test_mapped_fixture_passes_the_pipeline_parser() -> None:
    event = purchase(order(phone="+1 213-373-4253", landing_site="/?ttclid=E.C.P.x"))
    parsed = parse_event(event, now=NOW, dest_name=EventNames())
    assert parsed.problems == ()
    assert parsed.event is not None
    assert parsed.event.event_id == "ord_450789469_complete_payment"
    assert parsed.event.properties["cart_token"] == "68778783ad298f1c80c3bafcddeea02f"
    assert len(parsed.event.user.phone) == 1 and parsed.event.user.click_id("ttclid") == "E.C.P.x"


@pytest.mark.parametrize(("landing_site", "ttclid"), [
    ("https://shop.example/products/x?utm_source=tiktok&ttclid=E.C.P.abc", "E.C.P.abc"),
    ("/products/x?ttclid=E.C.P.rel&variant=1", "E.C.P.rel"),
    ("/?ttclid=E.C.P%2Benc", "E.C.P+enc"),
    ("http://www.example.com?source=abc", None),
    ("/products/x?ttclid=", None),
    (None, None),
    ("", None),
])
def test_ttclid_from_landing_site(landing_site: str | None, ttclid: str | None) -> None:
    assert purchase(order(landing_site=landing_site))["user"].get("ttclid") == ttclid


def test_fbc_from_the_landing_sites_fbclid_as_clicked_when_the_order_was_created() -> None:
    doc = order(landing_site="/products/x?fbclid=IwAR1_aB-c&utm_source=facebook",
                created_at="2026-04-23T11:00:00+00:00")
    assert purchase(doc)["user"]["fbc"] == "fb.1.1776942000000.IwAR1_aB-c"
    assert "fbc" not in purchase(order(landing_site="/products/x?fbclid=a%20b"))["user"]


def test_guest_checkout_without_customer_or_email() -> None:
    doc = order(customer=None, email="", contact_email="guest@example.com",
                client_details=None, browser_ip=None, billing_address=None,
                shipping_address=None, phone=None)
    doc.pop("landing_site")
    user = purchase(doc)["user"]
    assert user == {"email": "guest@example.com"}


def test_email_falls_back_to_customer_and_empty_strings_are_skipped() -> None:
    doc = order(email="", contact_email="")
    assert purchase(doc)["user"]["email"] == "bob.norman@hostmail.com"
    doc["customer"]["email"] = "  "
    assert "email" not in purchase(doc)["user"]


def test_eighteen_digit_ids_are_exact_strings() -> None:
    doc = order(id=BIG_ID, customer={"id": BIG_ID + 1, "email": None})
    for item in doc["line_items"]:
        item["sku"] = ""
        item["variant_id"] = BIG_ID + 2
    event = purchase(doc)
    assert event["event_id"] == f"ord_{BIG_ID}_complete_payment"
    assert event["properties"]["order_id"] == "820982911946154508"
    assert event["user"]["external_id"] == "820982911946154509"
    assert event["properties"]["contents"][0]["content_id"] == "820982911946154510"
    # a float that already lost precision is refused rather than rendered
    assert exact_id(float(BIG_ID)) is None
    assert exact_id(450789469.0) == "450789469"
    assert exact_id(True) is None and exact_id("12") == "12" and exact_id("1e5") is None


def test_content_id_key_and_fallbacks() -> None:
    doc = order()
    doc["line_items"][0]["sku"] = ""
    doc["line_items"][1]["sku"] = None
    doc["line_items"][2].update(sku="", variant_id=None, product_id=None)
    ids = [c["content_id"] for c in purchase(doc)["properties"]["contents"]]
    assert ids == ["39072856", "49148385", "IPod Nano - 8gb"]
    by_variant = [c["content_id"] for c in purchase(order(), "variant_id")["properties"]
                  ["contents"]]
    assert by_variant == ["39072856", "49148385", "457924702"]
    by_product = purchase(order(), "product_id")["properties"]["contents"][0]["content_id"]
    assert by_product == "632910392"


def test_source_name_becomes_order_source() -> None:
    assert purchase(order(source_name="tiktok_shop"))["order_source"] == "tiktok_shop"
    assert "order_source" not in purchase(order(source_name=None))


def test_phone_is_formatted_in_the_address_region() -> None:
    doc = order()
    doc["billing_address"].update(phone="030 901820", country_code="DE")
    assert purchase(doc)["user"]["phone"] == "+4930901820"
    # the same digits in a US order are not a valid number: dropped
    doc["billing_address"]["country_code"] = "US"
    doc["shipping_address"]["phone"] = None
    doc["customer"]["default_address"]["phone"] = None
    assert "phone" not in purchase(doc)["user"]
    # the order's own phone comes first; a + number needs no region
    doc["phone"] = "+44 20 7946 0958"
    assert purchase(doc)["user"]["phone"] == "+442079460958"


def test_shipping_phone_is_a_fallback() -> None:
    doc = order(billing_address=None)
    doc["shipping_address"].update(phone="(213) 373-4253", country_code="US")
    assert purchase(doc)["user"]["phone"] == "+12133734253"


def test_context_fields() -> None:
    doc = order(browser_ip=None, customer_locale="de-DE",
                client_details={"browser_ip": "2001:db8::1", "user_agent": "UA/2"})
    user = purchase(doc)["user"]
    assert (user["ip"], user["user_agent"], user["locale"]) == ("2001:db8::1", "UA/2", "de-DE")
    assert purchase(order(browser_ip="203.0.113.9"))["user"]["ip"] == "203.0.113.9"
    assert "ip" not in purchase(order(browser_ip="not-an-ip", client_details=None))["user"]


def test_paid_topic_prefers_processed_at() -> None:
    doc = order(processed_at="2026-04-23T11:23:00+02:00")
    paid = order_to_event(doc, "orders/paid", "sku", NOW, dest_name=TIKTOK_NAMES)
    assert paid is not None and paid["timestamp"] == 1776936180
    assert purchase(doc)["timestamp"] == 1199980800  # orders/create keeps created_at
    assert purchase(order(created_at=None))["timestamp"] == int(NOW)


def test_checkout_maps_to_initiate_checkout() -> None:
    checkout = {"id": BIG_ID, "token": "tok123", "cart_token": "cart9",
                "created_at": "2026-04-23T09:00:00Z", "total_price": "10.50",
                "currency": "EUR", "email": "a@b.example", "landing_site": None,
                "line_items": [{"sku": "S1", "quantity": 2, "price": "5.25", "title": "T"}]}
    event = order_to_event(checkout, "checkouts/create", "sku", NOW, dest_name=TIKTOK_NAMES)
    assert event is not None
    assert event["event"] == "InitiateCheckout"
    assert event["event_id"] == "chk_tok123_initiate_checkout"
    props = event["properties"]
    assert "order_id" not in props
    assert (props["value"], props["num_items"]) == (10.5, 2)
    assert (props["cart_token"], props["checkout_token"]) == ("cart9", "tok123")
    del checkout["id"]
    token_only = order_to_event(checkout, "checkouts/create", "sku", NOW,
                                dest_name=TIKTOK_NAMES)
    assert token_only is not None and token_only["event_id"] == "chk_tok123_initiate_checkout"
    checkout["id"] = BIG_ID
    del checkout["token"]
    id_only = order_to_event(checkout, "checkouts/create", "sku", NOW, dest_name=TIKTOK_NAMES)
    assert id_only is not None and id_only["event_id"] == f"chk_{BIG_ID}_initiate_checkout"


def test_event_id_follows_the_destination_name_mapping() -> None:
    event = order_to_event(order(), "orders/create", "sku", NOW,
                           dest_name=lambda n: "Purchase" if n == "Purchase" else n)
    assert event is not None and event["event_id"] == "ord_450789469_purchase"


def test_unmappable_payloads() -> None:
    with pytest.raises(ShopifyPayloadError, match="no usable id"):
        order_to_event(order(id=None), "orders/create", "sku", NOW, dest_name=TIKTOK_NAMES)
    with pytest.raises(ShopifyPayloadError, match="JSON object"):
        order_to_event([1], "orders/create", "sku", NOW, dest_name=TIKTOK_NAMES)
    with pytest.raises(ShopifyPayloadError, match="neither an id nor a token"):
        order_to_event({"token": ""}, "checkouts/create", "sku", NOW, dest_name=TIKTOK_NAMES)
    assert order_to_event(order(), "products/update", "sku", NOW, dest_name=TIKTOK_NAMES) is None


def test_topic_routing() -> None:
    assert ignore_reason("orders/create", "orders/create") is None
    assert ignore_reason("orders/paid", "orders/paid") is None
    assert ignore_reason("checkouts/create", "orders/paid") is None
    reason = ignore_reason("orders/paid", "orders/create")
    assert reason is not None and "purchase_topic" in reason
    assert ignore_reason("orders/create", "orders/paid") is not None
    assert ignore_reason("customers/create", "orders/create") is not None
    assert "missing" in (ignore_reason("", "orders/create") or "")


def test_hmac_of_the_fixture_bytes() -> None:
    body = FIXTURE.read_bytes()
    digest = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert hmac_valid(body, "s3cret", digest)
    assert not hmac_valid(orjson.dumps(orjson.loads(body)), "s3cret", digest)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"line_items": 5}, "line_items must be an array, got number"),
    ({"line_items": True}, "line_items must be an array, got boolean"),
    ({"line_items": "abc"}, "line_items must be an array, got string"),
    ({"line_items": {"0": {}}}, "line_items must be an array, got object"),
    ({"id": -5}, "no usable id"),
    ({"id": 0}, "no usable id"),
    ({"id": -5.0}, "no usable id"),
    ({"id": "²"}, "no usable id"),
    ({"id": "000"}, "no usable id"),
    ({"id": {"$numberLong": "1"}}, "no usable id"),
])
def test_odd_shapes_are_refused_with_a_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ShopifyPayloadError, match=reason):
        purchase(order(**changes))


@pytest.mark.parametrize("quantity", [2**63, 2**64 + 1, -1, 1e300, float(2**31)])
def test_quantities_beyond_any_real_order_name_the_line(quantity: float) -> None:
    doc = order()
    doc["line_items"][1]["quantity"] = quantity
    with pytest.raises(ShopifyPayloadError, match=r"line_items\.1\.quantity"):
        purchase(doc)


def test_odd_fields_reach_validation_which_names_them() -> None:
    doc = order(total_price={"amount": "1.00"})
    doc["line_items"][0].update(price={"amount": "1.00"}, quantity="two")
    parsed = parse_event(purchase(doc), now=NOW, dest_name=EventNames())
    assert {p.field for p in parsed.problems} == {
        "properties.value", "properties.contents.0.price", "properties.contents.0.quantity"}


def test_odd_context_is_dropped_not_fatal() -> None:
    doc = order(landing_site="http://[::1/?ttclid=x", customer={"default_address": None},
                line_items=[None, 3, {"quantity": None, "sku": "S"}],
                created_at="0001-01-01T00:00:00+14:00", billing_address=None)
    event = purchase(doc)
    assert "ttclid" not in event["user"]
    assert event["properties"]["contents"] == [{"content_id": "S"}]
    assert event["properties"]["num_items"] == 0


@FUZZ
@given(doc=shopify_orders, topic=st.sampled_from(["orders/create", "orders/paid",
                                                   "checkouts/create"]),
       content_id=st.sampled_from(["sku", "variant_id", "product_id"]))
def test_any_order_shape_maps_or_is_refused_with_a_reason(doc: dict[str, Any], topic: str,
                                                          content_id: str) -> None:
    try:  # what the endpoint sees: its decoder's reading of the bytes
        payload = nesting.loads(dumps(doc))
    except (nesting.TooDeep, orjson.JSONDecodeError):
        return  # refused with 400 before any mapping (tests/integration/test_nesting_http.py)
    try:
        event = order_to_event(payload, topic, content_id, NOW, dest_name=TIKTOK_NAMES)
    except ShopifyPayloadError as exc:
        assert exc.reason
        return
    assert event is not None
    # Never raises: problems name fields.
    parsed = parse_event(event, now=NOW, dest_name=EventNames())
    assert (parsed.event is None) == bool(parsed.problems)
    orjson.dumps(event)  # every number fits the encoder the store and the sender use
