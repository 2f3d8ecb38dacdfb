"""The tag in a real Chromium: a test shop page, a stand-in ttq, the gateway and the emulator."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.config import Secret, Settings, SourceSettings
from pixelrelay.names import snake_case
from tests.browser.shop import Site, cookies, idle, loaded, open_site, ttq_calls, wait_hits
from tests.conftest import SOURCE_KEY, make_settings
from tests.support import wait_for

pytest.importorskip("playwright.sync_api")
SITE_KEY = "site-key-browser"
STRICT_KEY = "site-key-browser-strict"
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    def settings(shop_origin: str, emulator_url: str) -> Settings:
        base = make_settings(Path(tmp_path_factory.mktemp("gw")) / "gw.db", emulator_url)
        browser = (SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                                  allowed_origins=(shop_origin,)),
                   SourceSettings(name="strict", kind="browser", key=Secret(STRICT_KEY),
                                  allowed_origins=(shop_origin,), consent_required=True))
        return dataclasses.replace(base, sources=base.sources + browser)

    with open_site(SITE_KEY, settings) as site:
        yield site


def test_landing_with_ttclid_sets_the_server_cookie(site: Site, context: Any) -> None:
    url = site.page("/landing", "<script>pixelrelay('track', 'ViewContent', "
                                "{content_id: 'SKU-1'}, {event_id: 'vc-landing'});</script>")
    page = context.new_page()
    page.goto(url + "?ttclid=E.C.P.browser1")
    user = site.delivered("vc-landing")["user"]
    assert user["ttclid"] == "E.C.P.browser1" and user["ttp"] == "2.standin-ttp"
    assert user["user_agent"] == page.evaluate("navigator.userAgent")
    jar = cookies(context)
    assert jar["prx_ttclid"]["value"] == "E.C.P.browser1"
    for name in ("prx_ttclid", "prx_sid"):
        assert jar[name]["httpOnly"] and jar[name]["sameSite"] == "Lax"
        assert jar[name]["expires"] > time.time() + 3600  # persistent, set by the server
    assert "prx_" not in page.evaluate("document.cookie")  # not readable (or writable) by script


def test_funnel_fires_both_legs_with_the_same_name_and_event_id(site: Site,
                                                                context: Any) -> None:
    product = site.page("/products/1", """<script>
      pixelrelay('track', 'ViewContent', {content_id: 'SKU-1', value: 20, currency: 'EUR'});
      pixelrelay('track', 'AddToCart', {content_id: 'SKU-1', value: 20, currency: 'EUR'});
    </script>""")
    checkout = site.page("/checkout/1", """<script>
      pixelrelay('identify', {email: 'Shopper@Example.com', phone: '+4917012345678'});
      pixelrelay('track', 'InitiateCheckout', {value: 20, currency: 'EUR'});
      pixelrelay('track', 'Purchase', {order_id: '9001', value: 20, currency: 'EUR'});
    </script>""")
    page = context.new_page()
    page.goto(product + "?ttclid=E.C.P.funnel")
    wait_for(lambda: len(ttq_calls(page)) == 2)
    fired = ttq_calls(page)
    # The landing's answer sets the ttclid cookie; a slow machine must not navigate first.
    wait_for(lambda: any(c["name"] == "prx_ttclid" for c in context.cookies()))
    page.goto(checkout)
    wait_for(lambda: len(ttq_calls(page)) == 3)
    fired += ttq_calls(page)
    tracked = [c for c in fired if c["name"] != "identify"]
    assert [c["name"] for c in tracked] == ["ViewContent", "AddToCart", "InitiateCheckout",
                                            "CompletePayment"]
    assert tracked[-1]["event_id"] == "ord_9001_complete_payment"
    assert {"name": "identify", "props": {"email": "Shopper@Example.com",
                                          "phone_number": "+4917012345678"}} in fired
    for call in tracked:
        server = site.delivered(call["event_id"])
        assert server["event"] == call["name"]
        # The checkout is on another path; the session cookie carried the landing's ttclid.
        assert server["user"]["ttclid"] == "E.C.P.funnel"
    purchase = site.delivered("ord_9001_complete_payment")
    assert len(purchase["user"]["email"][0]) == 64  # hashed on the server, never sent raw


def test_backend_purchase_for_the_session_carries_its_context(site: Site,
                                                              context: Any) -> None:
    url = site.page("/cart", """<script>
      pixelrelay('track', 'AddToCart', {content_id: 'SKU-2'}, {event_id: 'atc-backend'});
      pixelrelay('link', {cart_token: 'cart-browser-1'});
    </script>""")
    page = context.new_page()
    with page.expect_response(lambda r: "/v1/collect" in r.url and "cart-browser-1" in (
            r.request.post_data or "")) as linked:
        page.goto(url + "?ttclid=E.C.P.backend")
    assert linked.value.json()["linked"] == ["cart_token"]
    site.delivered("atc-backend")
    ua = page.evaluate("navigator.userAgent")
    sid = cookies(context)["prx_sid"]["value"]
    by_session = {"event": "Purchase", "session_id": sid,
                  "properties": {"order_id": "9101", "value": 5, "currency": "EUR"}}
    # What the Shopify webhook produces: no session, but the cart token the tag linked.
    by_cart = {"event": "Purchase", "order_source": "web",
               "properties": {"order_id": "9102", "value": 5, "currency": "EUR",
                              "cart_token": "cart-browser-1"}}
    for body in (by_session, by_cart):
        r = httpx.post(f"{site.gateway.url}/v1/events", headers=AUTH, json=body)
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    for event_id in ("ord_9101_complete_payment", "ord_9102_complete_payment"):
        user = site.delivered(event_id)["user"]
        assert (user.get("ttclid"), user["ttp"], user["ip"], user["user_agent"]) == (
            "E.C.P.backend", "2.standin-ttp", "127.0.0.1", ua), event_id


def test_nothing_is_sent_before_consent(site: Site, context: Any) -> None:
    url = site.page("/eu", """<button id="ok" onclick="pixelrelay('consent',
        {marketing: true, ad_user_data: true, ad_personalization: false})">OK</button>
      <script>pixelrelay('track', 'ViewContent', {}, {event_id: 'vc-consent'});</script>""",
                    key=STRICT_KEY)
    page = context.new_page()
    sent: list[str] = []
    page.on("request", lambda req: sent.append(req.url) if "/v1/collect" in req.url else None)
    page.goto(url + "?ttclid=E.C.P.consent")
    loaded(page)
    idle(page, 0.5)
    assert sent == [] and ttq_calls(page) == [] and "prx_sid" not in cookies(context)
    page.click("#ok")
    wait_for(lambda: bool(site.received("vc-consent")))
    assert [c["event_id"] for c in ttq_calls(page)] == ["vc-consent"]
    assert cookies(context)["prx_ttclid"]["value"] == "E.C.P.consent"
    assert site.received("vc-consent")[0]["limited_data_use"] is True


def test_google_consent_mode_update_releases_held_events(site: Site, context: Any) -> None:
    gtag = """<script>window.dataLayer = [];
      function gtag() { dataLayer.push(arguments); }
      gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied',
                                  ad_personalization: 'denied'});</script>"""
    url = site.page("/gcm", """<button id="yes" onclick="gtag('consent', 'update',
        {ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'granted'})">
      </button><button id="no" onclick="gtag('consent', 'update', {ad_storage: 'denied'})">
      </button><script>pixelrelay('track', 'ViewContent', {}, {event_id: 'vc-gcm'});</script>""",
                    key=STRICT_KEY, head=gtag)
    page = context.new_page()
    sent: list[dict[str, Any]] = []
    page.on("request", lambda req: sent.append(orjson.loads(req.post_data or "{}"))
            if "/v1/collect" in req.url else None)
    page.goto(url)
    loaded(page)
    idle(page, 0.3)
    assert sent == []  # the default "denied" means "not asked yet": held, not sent
    page.click("#yes")
    consent = site.delivered("vc-gcm")
    assert consent["limited_data_use"] is False
    # A visitor who then says no: what is tracked afterwards is dropped in the browser; the
    # server is told the answer alone (for the session's later orders), in Consent Mode's name.
    page.click("#no")
    page.evaluate("pixelrelay('track', 'AddToCart', {}, {event_id: 'atc-gcm-denied'})")
    wait_hits(page, sent, 2)
    idle(page, 0.3)
    assert [c["event_id"] for c in ttq_calls(page)] == ["vc-gcm"]
    assert [s.get("event") for s in sent] == ["ViewContent", None]
    assert sent[1]["consent"]["marketing"] == "denied"
    assert sent[1]["consent_source"] == "consent_mode" and "user" not in sent[1]


def test_a_blocked_pixel_still_yields_the_server_event(site: Site, context: Any) -> None:
    url = site.page("/blocked", """<script>pixelrelay('track', 'Purchase',
        {order_id: '9201', value: 12.5, currency: 'USD'});</script>""", pixel=False)
    page = context.new_page()
    page.goto(url)
    assert site.delivered("ord_9201_complete_payment")["event"] == "CompletePayment"


def test_a_page_unloading_right_after_track_still_delivers(site: Site, context: Any) -> None:
    away = site.page("/away", "<p>bye</p>")
    url = site.page("/leave", f"""<script>
      window.addEventListener('load', function () {{
        pixelrelay('track', 'AddToCart', {{}}, {{event_id: 'atc-unload'}});
        location.href = {orjson.dumps(away).decode()};
      }});</script>""")
    page = context.new_page()
    page.goto(url)
    page.wait_for_url(away)
    site.delivered("atc-unload")


def test_single_page_app_history_changes_are_page_views(site: Site, context: Any) -> None:
    url = site.page("/spa", "<p>app</p>", init={"pageViews": True})
    page = context.new_page()
    page.goto(url)
    loaded(page)
    page.evaluate("history.pushState({}, '', '/spa/step-2')")
    wait_for(lambda: len(ttq_calls(page)) == 2)
    calls = ttq_calls(page)
    assert [c["name"] for c in calls] == ["Pageview", "Pageview"]  # mapped like the server
    for call in calls:
        assert site.delivered(call["event_id"])["event"] == "Pageview"
    pages = [site.delivered(c["event_id"])["page"]["url"] for c in calls]
    assert pages == [url, f"{site.shop.url}/spa/step-2"]


def test_tag_derives_names_exactly_like_the_server(site: Site, context: Any) -> None:
    page = context.new_page()
    page.goto(site.page("/names", ""))
    loaded(page)
    for name in ("CompletePayment", "Order Completed", "ViewContent", "HTTPRequestSent",
                 "add_to-cart", "ABTest2Go", "Pageview"):
        assert page.evaluate("n => pixelrelay.snake(n)", name) == snake_case(name), name
