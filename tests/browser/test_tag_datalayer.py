"""GA4 dataLayer events through the tag, in a real Chromium: a GTM-style shop page pushes GA4
ecommerce events (before and after the tag loads, in the dataLayer and the gtag() form);
`init` with `dataLayer: true` sends them to TikTok as its standard events, each once, with
the Pixel and the server copy under one event_id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pixelrelay.pipeline.normalize import hash_email, hash_external_id
from tests.browser.shop import (
    Site,
    collect_hits,
    idle,
    loaded,
    open_tag_site,
    ttq_calls,
    wait_hits,
)
from tests.support import wait_for

pytest.importorskip("playwright.sync_api")
OPEN_KEY = "site-key-datalayer-open"
STRICT_KEY = "site-key-datalayer-strict"  # consent_required = true

TEE = ("{item_id: 'SKU-1', item_name: 'Linen Tee', item_category: 'Apparel', "
       "item_brand: 'Acme', item_variant: 'M', price: 20, quantity: 1}")
TEE_CONTENT = {"content_id": "SKU-1", "content_name": "Linen Tee",
               "content_category": "Apparel", "brand": "Acme", "price": 20, "quantity": 1}
# A theme with GTM: the dataLayer and gtag() exist before any tag; what the page knew while
# rendering is pushed at once, before the tag has loaded.
GTM_HEAD = f"""<script>
window.dataLayer = window.dataLayer || [];
function gtag() {{ dataLayer.push(arguments); }}
dataLayer.push({{'gtm.start': 1, event: 'gtm.js'}});
dataLayer.push({{user_id: 'cust-42'}});
dataLayer.push({{ecommerce: null}});
dataLayer.push({{event: 'view_item_list', ecommerce: {{item_list_id: 'tees',
  items: [{{item_id: 'SKU-1'}}, {{item_id: 'SKU-2'}}]}}}});
dataLayer.push({{ecommerce: null}});
dataLayer.push({{event: 'view_item', ecommerce: {{currency: 'EUR', value: 20, items: [{TEE}]}}}});
gtag('event', 'add_to_cart', {{currency: 'EUR', value: '40.00',
  items: [Object.assign({TEE}, {{quantity: '2'}})]}});
</script>"""
# The rest of the visit, pushed after the tag has loaded (one page, to keep one run).
LATER = f"""
gtag('event', 'search', {{search_term: 'linen shirt'}});
dataLayer.push({{ecommerce: null}});
dataLayer.push({{event: 'add_to_wishlist', ecommerce: {{currency: 'EUR', value: 20,
  items: [{TEE}]}}}});
dataLayer.push({{ecommerce: null}});
dataLayer.push({{event: 'begin_checkout', ecommerce: {{currency: 'EUR', value: 40,
  items: [{TEE}]}}}});
gtag('event', 'add_shipping_info', {{currency: 'EUR', value: 40, shipping_tier: 'Ground'}});
gtag('event', 'add_payment_info', {{currency: 'EUR', value: 40, payment_type: 'Card'}});
dataLayer.push({{ecommerce: null}});
dataLayer.push({{event: 'purchase',
  user_data: {{email: 'Buyer.GA4@Example.com', phone_number: '+4917012345678'}},
  ecommerce: {{transaction_id: 'T-5001', value: 45.5, currency: 'eur', shipping: 5.5,
               items: [{TEE}, {{item_id: 'SKU-9', item_name: 'Socks', price: 5, quantity: 4}}]}}}});
gtag('event', 'sign_up', {{method: 'email'}});
gtag('event', 'generate_lead', {{value: 10, currency: 'EUR'}});
"""
MAPPED = ["ViewContent", "AddToCart", "Search", "AddToWishlist", "InitiateCheckout",
          "AddPaymentInfo", "CompletePayment", "CompleteRegistration", "SubmitForm"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with open_tag_site(tmp_path_factory.mktemp("gw"), OPEN_KEY, STRICT_KEY) as site:
        yield site


def tracked(page: Any) -> list[dict[str, Any]]:
    return [c for c in ttq_calls(page) if c["name"] != "identify"]


def test_ga4_events_before_and_after_the_tag_become_tiktok_events(site: Site,
                                                                  context: Any) -> None:
    url = site.page("/gtm/shop", "<p>shop</p>", init={"dataLayer": True}, head=GTM_HEAD)
    page = context.new_page()
    page.goto(url + "?ttclid=E.C.P.gtm")
    loaded(page)
    wait_for(lambda: len(tracked(page)) == 2)  # the two pushed before the tag loaded
    page.evaluate(f"() => {{ {LATER} }}")
    wait_for(lambda: len(tracked(page)) >= len(MAPPED))
    idle(page, 0.3)  # nothing more comes: each push once, the unmapped ones never
    calls = tracked(page)
    assert [c["name"] for c in calls] == MAPPED
    sent = {c["name"]: site.delivered(c["event_id"]) for c in calls}
    assert all(sent[name]["event"] == name for name in MAPPED)
    assert all(e["user"]["ttclid"] == "E.C.P.gtm" for e in sent.values())

    view = sent["ViewContent"]["properties"]
    assert view["contents"] == [TEE_CONTENT]  # the list view's two items are not in it
    assert (view["value"], view["currency"], view["content_type"]) == (20, "EUR", "product")
    cart = sent["AddToCart"]["properties"]
    assert (cart["value"], cart["contents"][0]["quantity"]) == (40, 2)
    assert sent["Search"]["properties"]["query"] == "linen shirt"
    assert sent["SubmitForm"]["properties"]["value"] == 10

    purchase = sent["CompletePayment"]
    # The order's event_id, as the backend and webhook copies of order T-5001 derive it.
    assert purchase["event_id"] == "ord_T-5001_complete_payment"
    props = purchase["properties"]
    assert (props["value"], props["currency"]) == (45.5, "EUR")
    assert [c["content_id"] for c in props["contents"]] == ["SKU-1", "SKU-9"]
    assert props["contents"][1]["quantity"] == 4
    assert purchase["user"]["email"] == [hash_email("Buyer.GA4@Example.com")]
    assert len(purchase["user"]["phone"]) == 1
    assert purchase["user"]["external_id"] == [hash_external_id("cust-42")]
    # The Pixel was told who it is as well, with GA4's user_data in its own names.
    assert {"name": "identify", "props": {"email": "Buyer.GA4@Example.com",
                                          "phone_number": "+4917012345678",
                                          "external_id": "cust-42"}} in ttq_calls(page)


def test_consent_mode_still_holds_and_drops_ga4_events(site: Site, context: Any) -> None:
    head = """<script>window.dataLayer = [];
      function gtag() { dataLayer.push(arguments); }
      gtag('consent', 'default', {ad_storage: 'denied', ad_user_data: 'denied',
                                  ad_personalization: 'denied'});
      dataLayer.push({event: 'view_item', ecommerce: {items: [{item_id: 'SKU-C'}]}});</script>"""
    url = site.page("/gtm/consent", "<p>eu</p>", key=STRICT_KEY, head=head,
                    init={"dataLayer": True})
    page = context.new_page()
    hits = collect_hits(page)
    page.goto(url)
    loaded(page)
    idle(page, 0.3)
    assert hits == [] and ttq_calls(page) == []  # not asked yet: held
    page.evaluate("gtag('consent', 'update', {ad_storage: 'granted', ad_user_data: "
                  "'granted', ad_personalization: 'granted'})")
    wait_for(lambda: len(tracked(page)) == 1)
    [view] = tracked(page)
    assert site.delivered(view["event_id"])["properties"]["contents"] == [
        {"content_id": "SKU-C"}]
    # A visitor who then says no: a later purchase is dropped in the browser; the server
    # hears the answer alone. The consent commands are never events of their own.
    page.evaluate("""() => { gtag('consent', 'update', {ad_storage: 'denied'});
      dataLayer.push({event: 'purchase', ecommerce: {transaction_id: 'T-C1', value: 1,
                                                     currency: 'EUR'}}); }""")
    wait_hits(page, hits, 2)
    idle(page, 0.3)
    assert [h.get("event") for h in hits] == ["ViewContent", None]
    assert hits[1]["consent"]["marketing"] == "denied"
    assert [c["name"] for c in tracked(page)] == ["ViewContent"]


def test_a_page_without_a_datalayer_gets_one_and_its_pushes_count(site: Site,
                                                                  context: Any) -> None:
    # The tag loads first (no async) and makes the dataLayer; the theme's GTM snippet keeps
    # it (`window.dataLayer = window.dataLayer || []`) and pushes into it.
    url = site.page("/gtm/late", """<script>
      window.dataLayer = window.dataLayer || [];
      dataLayer.push({event: 'add_to_cart', ecommerce: {currency: 'USD', value: 12,
        items: [{item_id: 'SKU-L', price: 12, quantity: 1}]}});
      dataLayer.push({event: 'add_to_cart', ecommerce: {currency: 'USD', value: 12,
        items: [{item_id: 'SKU-L', price: 12, quantity: 1}]}});
    </script>""", init={"dataLayer": True}, sync=True)
    page = context.new_page()
    page.goto(url)
    wait_for(lambda: len(tracked(page)) == 2)
    idle(page, 0.3)
    calls = tracked(page)
    # Two pushes, two events (a shopper adding twice): each handled once, never merged.
    assert [c["name"] for c in calls] == ["AddToCart", "AddToCart"]
    assert calls[0]["event_id"] != calls[1]["event_id"]
    for call in calls:
        props = site.delivered(call["event_id"])["properties"]
        assert (props["value"], props["currency"]) == (12, "USD")
