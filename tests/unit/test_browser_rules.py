"""Browser source decisions: client IP behind proxies, ttclid, cookies, CORS, the tag's config."""

from __future__ import annotations

import orjson

from pixelrelay.config import Secret
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.sources import browser_rules as r
from pixelrelay.web import addresses

PROXIES = ("10.0.0.0/8", "127.0.0.1")


def test_client_ip_trusts_forwarded_for_only_from_configured_proxies() -> None:
    xff = "1.2.3.4, 203.0.113.5, 10.0.0.2"
    assert addresses.client_ip("10.0.0.1", xff, PROXIES) == "203.0.113.5"  # skip the trusted hops
    assert addresses.client_ip("198.51.100.7", xff, PROXIES) == "198.51.100.7"  # peer not a proxy
    assert addresses.client_ip("10.0.0.1", None, PROXIES) == "10.0.0.1"
    # all trusted: the left-most
    assert addresses.client_ip("10.0.0.1", "10.0.0.3", PROXIES) == "10.0.0.3"
    assert addresses.client_ip("10.0.0.1", "junk, 203.0.113.5", PROXIES) == "203.0.113.5"
    assert addresses.client_ip("10.0.0.1", "203.0.113.5, junk", PROXIES) == "10.0.0.1"
    assert addresses.client_ip("::1", "203.0.113.5", ("::1",)) == "203.0.113.5"
    assert addresses.client_ip(None, "203.0.113.5", PROXIES) is None


def test_a_click_id_from_the_landing_url_or_a_same_site_referrer() -> None:
    def click(url: str | None, referrer: str | None) -> str | None:
        return r.click_from_page(url, referrer, "ttclid", 512)

    assert click("https://shop.test/p?a=1&ttclid=E.C.P.1", None) == "E.C.P.1"
    assert click("https://shop.test/p", "https://www.shop.test/?ttclid=E.2") == "E.2"
    assert click("https://shop.test/p", "https://evil.test/?ttclid=E.3") is None
    assert click("https://shop.test/p?ttclid=" + "x" * 600, None) is None
    assert click(None, "https://shop.test/?ttclid=E.4") is None
    assert r.click_from_page("https://shop.test/p?xclid=E.5", None, "xclid") == "E.5"
    assert r.same_site("shop.test", "cdn.shop.test") and not r.same_site("shop.test", "xshop.test")


def test_cookies_are_first_party_lax_and_secure_on_https() -> None:
    c = r.build_cookie("prx_sid", "s_1", 86400, secure=True, domain="shop.test")
    assert c == ("prx_sid=s_1; Path=/; Max-Age=86400; SameSite=Lax; Domain=shop.test; "
                 "Secure; HttpOnly")
    assert "Secure" not in r.build_cookie("a", "b", 1, secure=False)
    assert r.cookie_value_ok("E.C.P.CvQBA-_~") and not r.cookie_value_ok("a;b")
    sid = r.new_session_id()
    assert r.valid_session_id(sid) and not r.valid_session_id("s_nothex")


def test_session_id_comes_from_the_cookie_then_the_tags_hint() -> None:
    cookie, hint = "s_" + "1" * 32, "s_" + "2" * 32
    assert r.choose_session_id(cookie, hint) == cookie
    assert r.choose_session_id(None, hint) == hint
    assert r.choose_session_id("forged;x", hint) == hint
    fresh = r.choose_session_id(None, "s_short")
    assert r.valid_session_id(fresh) and fresh != "s_short"


def test_cors_echoes_the_exact_origin() -> None:
    assert r.cors_headers("https://shop.test") == {
        "Vary": "Origin", "Access-Control-Allow-Origin": "https://shop.test",
        "Access-Control-Allow-Credentials": "true"}
    assert r.origin_allowed("https://shop.test", ("https://shop.test/",))
    assert not r.origin_allowed(None, ("https://shop.test",))
    assert not r.origin_allowed("https://evil.test", ("https://shop.test",))


def test_tag_config_merges_destination_map_over_defaults() -> None:
    dest = tiktok_destination(name="tt", pixel_code="C9ABC1234567890",
                              access_token=Secret("t"),
                              event_map={"Purchase": "Purchase", "Lead": "Contact"})
    cfg = r.tag_config((dest,), page_views=True)
    body, etag = r.render_tag("var C = " + r.CONFIG_MARK + ";", cfg)
    embedded = orjson.loads(body.decode()[len("var C = "):-1])
    assert embedded["map"]["Purchase"] == "Purchase" and embedded["map"]["Lead"] == "Contact"
    assert embedded["keys"]["pageview"] == "Pageview" and embedded["pageViews"] is True
    assert embedded["keys"]["ordercompleted"] == "CompletePayment"
    assert embedded["keys"]["lead"] == "Contact"  # the override wins by name_key too
    assert r.render_tag("x" + r.CONFIG_MARK, cfg)[1] != etag


def test_a_sandboxed_hit_is_judged_by_the_site_its_body_names() -> None:
    page = "https://Shop.Example/products/1?ttclid=E.1"
    # A browser's own Origin header is what counts, whatever the body claims.
    assert r.hit_origin("https://shop.example", "https://other.example", page) == (
        "https://shop.example")
    assert r.hit_origin(None, "https://shop.example", page) is None
    # From an opaque origin: the body's `origin`, else the page URL's site.
    assert r.hit_origin("null", "https://shop.example/", None) == "https://shop.example"
    assert r.hit_origin("null", None, page) == "https://shop.example"
    assert r.hit_origin("null", "javascript:alert(1)", page) == "https://shop.example"
    assert r.hit_origin("null", None, "http://127.0.0.1:8123/x") == "http://127.0.0.1:8123"
    assert r.hit_origin("null", None, "about:blank") is None
    assert r.hit_origin("null", 42, ["x"]) is None
    assert r.page_origin("https://[::1]:8443/p") == "https://[::1]:8443"
    assert r.page_origin("https://shop.example:99999/") is None  # not a port
    assert r.origin_allowed(r.hit_origin("null", None, page), ("https://shop.example/",))
    assert not r.origin_allowed(r.hit_origin("null", None, None), ("https://shop.example",))


def test_an_opaque_origin_gets_a_wildcard_without_credentials() -> None:
    # Its requests carry no cookie (credentials: 'omit'), and "*" is what those need.
    assert r.cors_headers("null") == {"Vary": "Origin", "Access-Control-Allow-Origin": "*"}
    assert r.cors_headers("https://shop.example")[
        "Access-Control-Allow-Credentials"] == "true"


def test_the_kept_click_id_is_the_cookies_else_the_one_the_body_hands_in() -> None:
    assert r.kept_click_id("E.C.P.cookie", "E.C.P.body") == "E.C.P.cookie"
    assert r.kept_click_id(None, "E.C.P.body") == "E.C.P.body"
    assert r.kept_click_id("bad value;", "E.C.P.body") == "E.C.P.body"
    assert r.kept_click_id(None, "x" * 513) is None
    assert r.kept_click_id(None, None) is None
    # The gateway's cookie of a click id is named from its URL parameter: the cookie an
    # older version set (prx_ttclid) is the same one.
    assert r.click_cookie("ttclid") == "prx_ttclid"


def test_declared_ids_come_from_the_hit_by_their_declaration() -> None:
    ids = r.declared_session_ids()
    assert [k.key for k in ids.clicks] == ["ttclid"] and ids.cookies == (("_ttp", "ttp", 512),)
    url = "https://shop.test/p?ttclid=E.url"
    assert r.ids_from_hit(ids, url, None, {"prx_ttclid": "E.cookie", "_ttp": "2.c"},
                          {"ttp": "2.body"}) == {"ttclid": "E.url", "ttp": "2.c"}
    assert r.ids_from_hit(ids, "https://shop.test/p", None, {"prx_ttclid": "E.cookie"},
                          {"ttclid": "E.body", "ttp": "2.body"}) == {
        "ttclid": "E.cookie", "ttp": "2.body"}
    assert r.ids_from_hit(ids, None, None, {}, {"ttclid": 5, "ttp": "x" * 513}) == {}
    assert "shopify_privacy" in r.CONSENT_SOURCES
    assert r.hit_consent({"marketing": "granted"}, "shopify_privacy")[1] == "shopify_privacy"
