"""Raw personal data in free-form fields: found, moved into match keys or removed."""

from __future__ import annotations

import hashlib

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
    assert e is not None and e.user.ttclid == "E.C.P.2"
    assert e.page.url == "https://shop.example/?ttclid=E.C.P.2"
    assert e.page.referrer is not None and "jane" not in e.page.referrer
