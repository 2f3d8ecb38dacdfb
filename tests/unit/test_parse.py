"""parse_event: SPEC §3.3 objects in, hashed Events or field-named Problems out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelrelay.destinations.tiktok.mapping import EventNames
from pixelrelay.errors import NoticeKind, Problem
from pixelrelay.model import ConsentState, Event, Source, User
from pixelrelay.pipeline.parse import ParseResult, parse_event, too_old
from pixelrelay.pipeline.readers import may_hold_nul, nul_path

NOW = 1776943400.0
GOLDEN = Path(__file__).parent / "golden"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def spec_event() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / "spec_example_event.json").read_text())
    return data


def ok(raw: object, **kw: Any) -> Event:
    kw.setdefault("dest_name", EventNames())  # a TikTok destination's names, by default
    r = parse_event(raw, now=NOW, **kw)
    assert r.problems == ()
    assert r.event is not None
    return r.event


def problems(raw: object, **kw: Any) -> dict[str, str]:
    r = parse_event(raw, now=NOW, **kw)
    assert r.event is None and r.problems
    return {p.field: p.reason for p in r.problems}


def test_spec_example_is_parsed_and_hashed() -> None:
    e = ok(spec_event())
    assert (e.name, e.event_id, e.event_time, e.source) == (
        "Purchase", "ord_10492_complete_payment", 1776943380, Source.WEB)
    assert e.user.email == (sha("customer@example.com"),)
    assert e.user.phone == (sha("+491701234567"),)
    assert e.user.external_id == (sha("cust_34982"),)
    assert (e.user.click_id("ttclid"), e.user.click_id("ttp"), e.user.ip, e.user.locale) == (
        "E.C.P.CvQBA", "2.x9Jb3x", "203.0.113.42", "de-DE")
    assert e.page.url == "https://shop.example/thanks"
    assert e.properties == spec_event()["properties"]
    assert e.consent.ad_personalization is ConsentState.DENIED
    assert e.consent.region == "DE"
    assert (e.session_id, e.order_source, e.received_at, e.warnings) == ("s_8f2c", "web", NOW, ())


def test_only_event_is_required_and_defaults_apply() -> None:
    e = ok({"event": "ViewContent"}, new_id=lambda: "uuid-1")
    assert (e.event_id, e.event_time, e.source) == ("uuid-1", int(NOW), Source.WEB)
    assert e.user.email == () and e.properties == {} and e.consent.is_empty


@pytest.mark.parametrize("raw", [None, [], "Purchase", 3])
def test_input_must_be_an_object(raw: object) -> None:
    assert parse_event(raw, now=NOW) == ParseResult(
        None, (Problem("", "event must be a JSON object"),))


@pytest.mark.parametrize(("value", "reason"), [
    (None, "is required"), ("", "must not be empty"), ("   ", "must not be empty"),
    (7, "must be a string, got number"), ("x" * 101, "is longer than 100 characters"),
])
def test_event_name_rules(value: object, reason: str) -> None:
    assert problems({"event": value}) == {"event": reason}


def test_missing_event_key_is_required() -> None:
    assert problems({}) == {"event": "is required"}


def test_event_names_are_kept_as_given_and_mapped_later() -> None:
    # Case and separators only matter to the mapping (destinations/tiktok/mapping.py), which
    # names "purchase" CompletePayment; the event is never refused for them.
    assert ok({"event": "purchase"}).name == "purchase"
    assert ok({"event": " order_completed "}).name == "order_completed"


def test_event_id_derived_from_order_id_and_mapped_name() -> None:
    e = ok({"event": "Purchase", "properties": {"order_id": 10492}})
    assert e.event_id == "ord_10492_complete_payment"
    assert e.properties["order_id"] == "10492"
    e = ok({"event": "Purchase", "properties": {"order_id": "A-7"}},
           dest_name=lambda n, source: "Purchase")
    assert e.event_id == "ord_A-7_purchase"
    for name in ("Order Completed", "order completed", "order_completed"):
        assert ok({"event": name, "properties": {"order_id": "9"}}).event_id == (
            "ord_9_complete_payment")


def test_event_id_given() -> None:
    assert ok({"event": "Lead", "event_id": 273196}).event_id == "273196"
    assert ok({"event": "Lead", "event_id": "abc"}).event_id == "abc"
    assert ok({"event": "Lead", "event_id": ""}, new_id=lambda: "n").event_id == "n"
    assert problems({"event": "Lead", "event_id": 1.5}) == {
        "event_id": "must be a string, got number"}
    assert problems({"event": "Lead", "event_id": True}) == {
        "event_id": "must be a string, got boolean"}
    assert problems({"event": "Lead", "event_id": "x" * 257}) == {
        "event_id": "is longer than 256 characters"}


@pytest.mark.parametrize(("value", "expected"), [
    (1776943380, 1776943380),
    (1776943380.9, 1776943380),
    (1776943380123, 1776943380),  # milliseconds
    ("1776943380", 1776943380),
    ("2026-04-23T11:23:00Z", 1776943380),
    ("2026-04-23T13:23:00+02:00", 1776943380),
    ("2026-04-23T11:23:00", 1776943380),  # naive means UTC
    ("2026-04-23T11:23:00.500Z", 1776943380),
    (NOW + 299, int(NOW) + 299),  # within the tolerated skew
])
def test_timestamp_forms(value: object, expected: int) -> None:
    assert ok({"event": "Lead", "timestamp": value}).event_time == expected


@pytest.mark.parametrize("value", ["yesterday", True, 0, -5, float("nan"), float("inf"),
                                   [1], "2026-13-01T00:00:00Z"])
def test_timestamp_invalid(value: object) -> None:
    assert "ISO 8601" in problems({"event": "Lead", "timestamp": value})["timestamp"]


def test_timestamp_in_the_future() -> None:
    r = parse_event({"event": "Lead", "timestamp": NOW + 3600}, now=NOW)
    (p,) = r.problems
    # The reason is one text for every such event (diagnostics group by it); how far ahead
    # goes to the sender only, in the detail.
    assert p.reason.startswith("is in the future") and "3600" not in p.reason
    assert p.detail == "3600 s ahead" and "3600 s ahead" in p.as_dict()["reason"]
    assert "in the future" in problems({"event": "Lead", "timestamp": (NOW + 600) * 1000})[
        "timestamp"]


def test_too_old() -> None:
    assert too_old(int(NOW) - 7 * 86400, NOW, 7) is None
    p = too_old(int(NOW) - 8 * 86400, NOW, 7)
    assert p is not None and p.field == "timestamp" and "7-day" in p.reason


def test_source() -> None:
    lead = {"lead_id": "7403"}
    assert ok({"event": "Lead", "source": "crm", "lead": lead}).source is Source.CRM
    assert ok({"event": "Lead", "source": "OFFLINE"}).source is Source.OFFLINE
    assert problems({"event": "Lead", "source": "email"}) == {
        "source": "must be one of web, app, offline, crm"}
    assert "source" in problems({"event": "Lead", "source": 1})


def test_unknown_fields_are_dropped_with_a_hint_and_the_event_kept() -> None:
    e = ok({"event": "Lead", "timestmap": 1, "user": {"emial": "a@b.co", "shoe_size": "x"},
            "page": {"title": "T"}, "consent": {"marketting": "granted"}})
    got = {w.field: w.reason for w in e.warnings}
    assert got["timestmap"] == "unknown field; dropped (did you mean timestamp?)"
    assert got["user.emial"] == "unknown field; dropped (did you mean user.email?)"
    assert got["user.shoe_size"] == "unknown field; dropped"
    assert got["page.title"].startswith("unknown field; dropped")
    assert got["consent.marketting"] == "unknown field; dropped (did you mean consent.marketing?)"
    assert {w.kind for w in e.warnings} == {NoticeKind.UNKNOWN_FIELD}
    assert e.user == User() and e.event_time == int(NOW)  # nothing unknown was read
    assert not any("a@b.co" in w.text() for w in e.warnings)


def test_a_flood_of_unknown_keys_gives_a_bounded_warning_list() -> None:
    e = ok({"event": "Lead", **{f"k{i}": i for i in range(500)}})
    assert len(e.warnings) == 21 and e.warnings[-1].field == "*"


def test_all_problems_are_collected() -> None:
    got = problems({"event": 5, "timestamp": "x", "user": {"ip": "300.1.1.1"},
                    "properties": {"value": "12,50", "currency": "EURO",
                                   "contents": [{"content_id": "a"}, {"quantity": -1},
                                                {"content_id": [1], "price": "free"}]}})
    assert set(got) == {"event", "timestamp", "user.ip", "properties.value",
                        "properties.currency", "properties.contents.1.quantity",
                        "properties.contents.2.content_id", "properties.contents.2.price"}


def test_user_identifiers_lists_dedup_and_warnings_without_raw_values() -> None:
    raw: dict[str, Any] = {"event": "Lead", "user": {
        "email": ["A@example.com", "a@example.com ", "not-an-email", "", 5],
        "phone": "12", "external_id": ["u1", "U1"]}}
    r = parse_event(raw, now=NOW, phone_region="DE")
    assert r.problems == (Problem("user.email.4", "must be a string, got number"),)
    raw["user"]["email"] = raw["user"]["email"][:4]
    e = ok(raw, phone_region="DE")
    assert e.user.email == (sha("a@example.com"),)
    assert e.user.phone == ()
    assert e.user.external_id == (sha("u1"), sha("U1"))
    assert [w.text() for w in e.warnings] == [
        "user.email.2: not a valid email address; dropped",
        "user.phone: not a valid phone number for region DE; dropped"]
    assert {w.kind for w in e.warnings} == {NoticeKind.DROPPED_VALUE}
    assert not any("not-an-email" in w.text() or "0170" in w.text() for w in e.warnings)


def test_a_possible_phone_in_an_unknown_range_is_kept_and_flagged() -> None:
    e = ok({"event": "Lead", "user": {"phone": "+1 555 123 4567"}})
    assert e.user.phone == (sha("+15551234567"),)
    assert [w.kind for w in e.warnings] == [NoticeKind.UNVERIFIED]
    assert "555" not in e.warnings[0].text()


def test_phone_without_region_needs_a_plus() -> None:
    e = ok({"event": "Lead", "user": {"phone": "0170 1234567"}})
    assert e.user.phone == () and "+<country code>" in e.warnings[0].reason
    assert ok({"event": "Lead", "user": {"phone": "0170 1234567"}}, phone_region="DE"
              ).user.phone == (sha("+491701234567"),)


def test_user_shape_errors() -> None:
    assert problems({"event": "Lead", "user": "a@b.co"}) == {
        "user": "must be an object, got string"}
    assert problems({"event": "Lead", "user": {"email": {"a": 1}}}) == {
        "user.email": "must be a string or a list of strings, got object"}
    assert problems({"event": "Lead", "user": {"email": ["a@b.co"] * 11}}) == {
        "user.email": "has more than 10 values"}
    assert problems({"event": "Lead", "user": {"ttclid": "x" * 513}}) == {
        "user.ttclid": "is longer than 512 characters"}


def test_user_context_fields() -> None:
    e = ok({"event": "Lead", "user": {"ip": " 2001:DB8:0:0:0:0:0:1 ", "user_agent": "U" * 5000,
                                      "ttclid": " ", "locale": None}})
    assert e.user.ip == "2001:db8::1"
    assert e.user.user_agent == "U" * 1024  # cut, not refused: a long UA is still useful
    assert e.user.click_id("ttclid") is None and e.user.locale is None


def test_page() -> None:
    e = ok({"event": "Lead", "page": {"url": "https://a.example/?q=" + "x" * 5000}})
    assert e.page.url is not None and len(e.page.url) == 4096 and e.page.referrer is None
    assert problems({"event": "Lead", "page": "https://a"}) == {
        "page": "must be an object, got string"}


def test_a_page_urls_click_ids_fill_the_ones_the_event_lacks() -> None:
    """A backend's event names its landing page: TikTok's ttclid is taken as it is, Meta's
    fbc is made from the fbclid (case kept, the event's time in ms as the click's)."""
    url = "https://shop.example/p/1?ttclid=E.C.P.9&fbclid=IwAR2xY_z-9&utm_source=fb"
    e = ok({"event": "Purchase", "timestamp": 1776943000, "page": {"url": url}})
    assert e.user.click_id("ttclid") == "E.C.P.9"
    assert e.user.click_id("fbc") == "fb.1.1776943000000.IwAR2xY_z-9"
    # What the event carries wins over its URL.
    given = ok({"event": "Purchase", "page": {"url": url},
                "user": {"fbc": "fb.1.1700000000000.Old", "ttclid": "E.C.P.1"}})
    assert (given.user.click_id("fbc"), given.user.click_id("ttclid")) == (
        "fb.1.1700000000000.Old", "E.C.P.1")
    # An fbclid no cookie could hold is no click id Meta would take.
    odd = ok({"event": "Purchase", "page": {"url": "https://shop.example/?fbclid=a%20b%22c"}})
    assert odd.user.click_id("fbc") is None
    assert ok({"event": "Purchase", "page": {"url": "https://shop.example/?x=1"}}
              ).user.click_ids == ()


@pytest.mark.parametrize(("value", "expected"), [(129.95, 129.95), (10, 10.0), ("129.95", 129.95),
                                                 (0, 0.0)])
def test_value_numbers(value: object, expected: float) -> None:
    v = ok({"event": "Purchase", "properties": {"value": value}}).properties["value"]
    assert v == expected and isinstance(v, float)


@pytest.mark.parametrize("value", ["$10", "1,299.00", -1, float("nan"), "inf", True, [1]])
def test_value_invalid(value: object) -> None:
    assert "properties.value" in problems({"event": "Purchase", "properties": {"value": value}})


def test_currency() -> None:
    assert ok({"event": "Purchase", "properties": {"currency": "eur"}}).properties[
        "currency"] == "EUR"
    assert "currency" not in ok({"event": "Purchase", "properties": {"currency": ""}}).properties
    for bad in ("EURO", "XXX", 978):
        assert "ISO 4217" in problems({"event": "Purchase", "properties": {"currency": bad}})[
            "properties.currency"]


def test_contents_and_ids() -> None:
    props = ok({"event": "Purchase", "properties": {
        "contents": [{"content_id": 481, "quantity": 2.0, "price": "9.5", "brand": "B",
                      "content_name": None}],
        "content_ids": [1, "2"], "shop_id": 77, "num_items": 2, "content_type": "product_group",
        "custom_flag": {"nested": [1, None]}, "value": None}}).properties
    assert props == {"contents": [{"content_id": "481", "quantity": 2, "price": 9.5, "brand": "B"}],
                     "content_ids": ["1", "2"], "shop_id": "77", "num_items": 2,
                     "content_type": "product_group", "custom_flag": {"nested": [1, None]}}
    assert ok({"event": "Purchase", "properties": {"content_ids": "SKU"}}).properties[
        "content_ids"] == ["SKU"]


@pytest.mark.parametrize(("props", "field"), [
    ({"contents": "a"}, "properties.contents"),
    ({"contents": ["a"]}, "properties.contents.0"),
    ({"contents": [{"content_name": {"x": 1}}]}, "properties.contents.0.content_name"),
    ({"contents": [{"content_id": 1.5}]}, "properties.contents.0.content_id"),
    ({"contents": [{"quantity": 1.5}]}, "properties.contents.0.quantity"),
    ({"contents": [{}] * 1001}, "properties.contents"),
    ({"content_type": "sku"}, "properties.content_type"),
    ({"num_items": "three"}, "properties.num_items"),
    ({"order_id": True}, "properties.order_id"),
    ({"content_ids": [{"a": 1}]}, "properties.content_ids.0"),
    ({"query": 5}, "properties.query"),
])
def test_property_problems_name_the_path(props: dict[str, Any], field: str) -> None:
    assert field in problems({"event": "Purchase", "properties": props})


def test_properties_must_be_an_object() -> None:
    assert problems({"event": "Purchase", "properties": [1]}) == {
        "properties": "must be an object, got array"}


def test_query_also_becomes_search_string() -> None:
    assert ok({"event": "Search", "properties": {"query": "red shoes"}}).properties == {
        "query": "red shoes", "search_string": "red shoes"}
    assert ok({"event": "Search", "properties": {"query": "a", "search_string": "b"}}
              ).properties == {"query": "a", "search_string": "b"}


def test_consent() -> None:
    c = ok({"event": "Lead", "consent": {"marketing": "GRANTED", "ad_user_data": "denied",
                                         "region": "de"}}).consent
    assert (c.marketing, c.ad_user_data, c.ad_personalization, c.region) == (
        ConsentState.GRANTED, ConsentState.DENIED, None, "DE")
    assert problems({"event": "Lead", "consent": {"marketing": "maybe"}}) == {
        "consent.marketing": "must be granted or denied"}
    # Google Consent Mode's names and booleans read as the same states.
    c = ok({"event": "Lead", "consent": {"ad_storage": "denied", "analytics_storage": "granted",
                                         "ad_user_data": True}}).consent
    assert (c.marketing, c.ad_user_data) == (ConsentState.DENIED, ConsentState.GRANTED)
    assert problems({"event": "Lead", "consent": "granted"}) == {
        "consent": "must be an object, got string"}


@pytest.mark.parametrize(("given", "states"), [
    # The tag's own words (the shortcut), then what takes the general reading.
    ({"marketing": "granted", "ad_user_data": "denied", "ad_personalization": None},
     (ConsentState.GRANTED, ConsentState.DENIED, None)),
    ({"marketing": " Denied ", "ad_user_data": True, "ad_personalization": ""},
     (ConsentState.DENIED, ConsentState.GRANTED, None)),
    ({"ad_user_data": ["granted"]}, "consent.ad_user_data"),
    ({"marketing": {"granted": 1}}, "consent.marketing"),
    ({"ad_personalization": 1}, "consent.ad_personalization"),
])
def test_consent_states(given: dict[str, object], states: object) -> None:
    event = {"event": "Lead", "consent": {**given, "region": "fr"}}
    if isinstance(states, str):
        assert problems(event) == {states: "must be granted or denied"}
        return
    c = ok(event).consent
    assert (c.marketing, c.ad_user_data, c.ad_personalization, c.region) == (*states, "FR")


def test_other_strings() -> None:
    e = ok({"event": "Lead", "session_id": " s1 ", "order_source": "tiktok_shop"})
    assert (e.session_id, e.order_source) == ("s1", "tiktok_shop")
    assert problems({"event": "Lead", "session_id": 5}) == {
        "session_id": "must be a string, got number"}


def test_type_names_in_messages() -> None:
    assert problems({"event": "Lead", "user": {"email": [True]}}) == {
        "user.email.0": "must be a string, got boolean"}
    assert problems({"event": "Lead", "session_id": ("s",)}) == {
        "session_id": "must be a string, got tuple"}


def test_blank_content_ids_are_skipped() -> None:
    props = ok({"event": "ViewContent", "properties": {"content_ids": ["", "7"]}}).properties
    assert props == {"content_ids": ["7"]}


def test_every_blank_form_is_absent_for_every_optional_field() -> None:
    e = ok({"event": "Lead", "event_id": [], "timestamp": "", "source": {}, "session_id": [],
            "user": {"ttclid": [], "ip": {}, "first_name": "", "email": []},
            "page": {"url": []}, "limited_data_use": "", "test_event_code": [],
            "lead": {}, "ad": {"is_retargeting": ""}, "properties": {"num_items": ""}},
           new_id=lambda: "n1")
    assert (e.event_id, e.event_time, e.session_id, e.limited_data_use, e.test_event_code,
            e.ad, e.lead) == ("n1", int(NOW), None, None, None, None, None)
    assert e.user == User() and e.page.url is None and e.properties == {}


def test_digits_other_than_ascii_are_not_counts() -> None:
    assert problems({"event": "Lead", "properties": {"num_items": "²"}}) == {
        "properties.num_items": "must be a non-negative integer"}


_NUL_TEXT = st.text(st.sampled_from(["a", "\x00", "\\", "u", "0", "\u00e9"]), max_size=8)


@given(st.recursive(_NUL_TEXT, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(_NUL_TEXT, inner, max_size=3), max_leaves=6),
       st.booleans())
def test_a_json_text_that_decodes_to_a_nul_always_shows_the_escape(value: object,
                                                                  ascii_only: bool) -> None:
    """The API skips each event's NUL check when the body has no \\u0000 escape: whatever
    writer made the text, a NUL in any key or string must show as that escape."""
    texts = [orjson.dumps(value), json.dumps(value, ensure_ascii=ascii_only).encode()]
    for text in texts:
        assert may_hold_nul(text) or nul_path(orjson.loads(text)) is None


def test_a_users_own_country_is_the_region_of_their_national_phone() -> None:
    """An import row or an order with country=DE: '030 1234567' is a Berlin number, not
    refused for want of a default region (issue 28, point 6)."""
    e = ok({"event": "Lead", "user": {"phone": "030 12345678", "country": "DE"}})
    assert e.user.phone == (hashlib.sha256(b"+493012345678").hexdigest(),)
    # The configured region stays the fallback, and a country name is no region.
    fallback = ok({"event": "Lead", "user": {"phone": "030 12345678", "country": "Germany"}},
                  phone_region="DE")
    assert fallback.user.phone == e.user.phone
