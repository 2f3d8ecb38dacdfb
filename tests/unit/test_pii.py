"""Raw personal data in free-form fields: found, moved into match keys or removed."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from pixelrelay.pipeline.parse import parse_event
from pixelrelay.pipeline.pii import Found, looks_like_email, looks_like_phone, scrub_url

NOW = 1776943400.0


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.mark.parametrize(("text", "region", "phone"), [
    ("+49 170 1234567", "", True), ("0049 170 1234567", "", True),
    ("call +1 555 123 4567 now", "", True), ("(030) 1234-5678", "DE", True),
    ("(030) 1234-5678", "", False),  # no region: a national number is not recognisable
    ("2025-09-01", "DE", False), ("203.0.113.42", "DE", False), ("20250901", "DE", False),
    ("SKU-481-2231-99", "DE", False), ("1077218", "DE", False), ("12:30:00", "DE", False),
])
def test_phone_shapes(text: str, region: str, phone: bool) -> None:
    assert looks_like_phone(text, region) is phone


def test_email_shapes() -> None:
    assert looks_like_email("Jane.Doe@Example.com")
    assert looks_like_email("mailto:jane@example.org?subject=x")
    assert not looks_like_email("@handle") and not looks_like_email("https://x.com/@user")


def test_named_keys_become_hashed_match_keys_others_are_removed() -> None:
    e = parse_event({"event": "Lead", "user": {"email": "a@example.com"}, "properties": {
        "email": "Jane@Example.com", "phone_number": "+49 170 1234567",
        "note": "reach me at jane@example.com", "order_id": "10492",
        "contents": [{"content_id": "SKU-481-2231-99", "content_name": "+49 170 7654321"}],
        "nested": {"deep": ["ok", "+44 20 7946 0958", 3, True]}, "coupon": "SPRING",
        "customer_email": 7}},  # no text under an email key: nothing to move
        now=NOW).event
    assert e is not None
    assert e.user.email == (sha("a@example.com"), sha("jane@example.com"))
    assert e.user.phone == (sha("+491701234567"),)
    assert e.properties == {"order_id": "10492", "coupon": "SPRING",
                            "contents": [{"content_id": "SKU-481-2231-99"}],
                            "nested": {"deep": ["ok", 3, True]}, "customer_email": 7}
    fields = {w.field for w in e.warnings}
    assert {"properties.email", "properties.phone_number", "properties.note",
            "properties.contents.0.content_name", "properties.nested.deep.1"} <= fields
    assert not any("jane" in w.text().lower() or "1234567" in w.text() for w in e.warnings)


def test_urls_keep_their_path_and_other_parameters() -> None:
    found = Found()
    url = "https://shop.example/thanks/42?ttclid=E.C.P.1&email=jane%40example.com&t=+4917012345678#x"
    assert scrub_url(url, "page.url", found) == "https://shop.example/thanks/42?ttclid=E.C.P.1#x"
    assert [n.field for n in found.notices] == ["page.url?email", "page.url?t"]
    assert scrub_url("https://shop.example/p?id=77", "page.url", found) == (
        "https://shop.example/p?id=77")
    e = parse_event({"event": "ViewContent", "page": {
        "url": "https://shop.example/?ttclid=E.C.P.2&e=jane@example.com",
        "referrer": "https://mail.example/u/jane@example.com/inbox"}}, now=NOW).event
    assert e is not None and e.user.click_id("ttclid") == "E.C.P.2"
    assert e.page.url == "https://shop.example/?ttclid=E.C.P.2"
    assert e.page.referrer is not None and "jane" not in e.page.referrer


@pytest.mark.parametrize(("url", "kept"), [
    # A fragment, as parameters or whole.
    ("https://shop.example/p#ref=bob@example.org&tab=2", "https://shop.example/p#tab=2"),
    ("https://shop.example/p#bob@example.org", "https://shop.example/p"),
    ("https://shop.example/p#bob%40example.org", "https://shop.example/p"),
    # Path segments, percent-encoded or not.
    ("https://shop.example/u/%2B49%20170%201234567/orders", "https://shop.example/u/orders"),
    ("https://shop.example/u/bob%40example.org/", "https://shop.example/u/"),
    ("https://shop.example/call/004917012345678", "https://shop.example/call"),
    # A bare national number in a query, with the region's trunk prefix.
    ("https://shop.example/?ref=01701234567&utm=x", "https://shop.example/?utm=x"),
    # An email as a parameter's name.
    ("https://shop.example/?bob@example.org=1&a=b", "https://shop.example/?a=b"),
])
def test_every_part_of_a_url_is_scrubbed(url: str, kept: str) -> None:
    found = Found()
    assert scrub_url(url, "page.url", found, "DE") == kept
    assert found.notices and not any("bob" in n.text() or "1234567" in n.text()
                                     for n in found.notices)


@pytest.mark.parametrize("url", [
    "https://shop.example/products/5633837583468?variant=40123456789012#reviews",
    "https://shop.example/p/2025-09-01/sale?id=12345678",
    "https://shop.example/?ttclid=E.C.P.a1b2c3&utm_source=tiktok#top",
])
def test_ids_dates_and_click_ids_in_urls_stay(url: str) -> None:
    found = Found()
    assert scrub_url(url, "page.url", found, "DE") == url and not found.notices


def test_keys_and_values_at_any_depth_are_scrubbed() -> None:
    deep: dict[str, object] = {"leaf": "mail bob@example.org", "ok": "fine"}
    for _ in range(20):
        deep = {"n": deep}
    e = parse_event({"event": "Lead", "properties": {
        "bob@example.org": {"x": 1}, "note%40": "ok", "deep": deep,
        "encoded": "bob%40example.org", "contents": [{"content_id": "1",
                                                     "content_name": "for bob@example.org"}],
        "description": "call +49 170 1234567"}}, now=NOW, phone_region="DE").event
    assert e is not None
    text = orjson_text(e.properties) + " ".join(w.text() for w in e.warnings)
    assert "bob" not in text and "1234567" not in text
    assert "fine" in text and "note%40" in text
    assert "properties.(personal data)" in {w.field for w in e.warnings}


def test_an_event_name_or_event_id_holding_an_email_is_refused_by_field() -> None:
    named = parse_event({"event": "signup ann@example.com"}, now=NOW)
    assert named.event is None and [p.field for p in named.problems] == ["event"]
    assert "ann" not in named.problems[0].reason
    by_id = parse_event({"event": "Lead", "event_id": "ann@example.com"}, now=NOW)
    assert by_id.event is None and [p.field for p in by_id.problems] == ["event_id"]


def test_user_agent_and_id_like_fields_lose_personal_data() -> None:
    e = parse_event({"event": "Lead", "session_id": "bob@example.org",
                     "user": {"user_agent": "Mozilla/5.0 (X11) bob@example.org +49 170 1234567",
                              "ttclid": "bob@example.org", "ttp": "2.ttp.1"},
                     "app": {"app_id": "com.example", "app_name": "Shop for ann@example.com"},
                     "source": "app"}, now=NOW).event
    assert e is not None and e.session_id is None and e.user.click_id("ttclid") is None
    assert e.user.user_agent == "Mozilla/5.0 (X11)" and e.user.click_id("ttp") == "2.ttp.1"
    assert e.app is not None and e.app.app_name == "Shop for"


@pytest.mark.parametrize("ua", [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 "
    "[FB_IAB/FB4A;FBAV/440.0.0.31.105;]",
])
def test_real_user_agents_pass_unchanged(ua: str) -> None:
    e = parse_event({"event": "Lead", "user": {"user_agent": ua}}, now=NOW).event
    assert e is not None and e.user.user_agent == ua and not e.warnings


def orjson_text(v: object) -> str:
    return orjson.dumps(v).decode()
