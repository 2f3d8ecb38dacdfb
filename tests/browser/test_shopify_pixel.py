"""The Shopify custom pixel (`pixelrelay shopify-pixel`) in real Chromium, inside an emulation
of Shopify's lax sandbox (tests/browser/shopify_sandbox.py): an opaque-origin frame on the
shop's pages, the gateway on another site, a visitor landing from an ad, answering the
consent banner, buying, and the signed orders/create webhook of the same order."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SessionSettings, SourceSettings
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.sources.shopify_pixel import custom_pixel
from tests.browser.shopify_sandbox import (
    Shop,
    checkout,
    fbq_calls,
    hits,
    money,
    publish,
    sandbox_frame,
    settled_unsent,
    touched,
    ttq_calls,
    variant,
)
from tests.conftest import ACCESS_TOKEN, ADMIN_TOKEN, PIXEL, SOURCE_KEY, emu_state, make_settings
from tests.support import ServerThread, free_port, wait_for

pytest.importorskip("playwright.sync_api")
SITE_KEY = "site-key-shopify-pixel"
SHOPIFY_SECRET = "shpss_pixel_secret"
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders-create.json"
TTP = "2.pixel-ttp.1733300000"
FBP = "fb.1.1733300000000.1234567890"
EMAIL = "bob.norman@hostmail.com"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}
# Long, so the pixel's purchase is still held whatever the machine's load when the
# webhook's copy arrives; that copy ends the hold.
PURCHASE_HOLD_S = 30.0


@dataclasses.dataclass
class Rig:
    gateway: ServerThread
    emulator: ServerThread
    shop_url: str
    shop: Shop


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    from pixelrelay.emulator import Emulator, create_emulator_app

    shop = Shop()
    shop_port = free_port()
    shop_url = f"http://127.0.0.1:{shop_port}"
    emu_app = create_emulator_app(Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL]))
    with ServerThread(emu_app) as emulator:
        base = make_settings(Path(tmp_path_factory.mktemp("px")) / "gw.db", emulator.url)
        settings = dataclasses.replace(
            base, sources=(
                *base.sources,
                SourceSettings(name="shop-web", kind="browser", key=Secret(SITE_KEY),
                               allowed_origins=(shop_url,)),
                SourceSettings(name="shop", kind="shopify", key=Secret(""),
                               secret=Secret(SHOPIFY_SECRET))),
            sessions=SessionSettings(purchase_hold_s=PURCHASE_HOLD_S))
        with ServerThread(create_app(settings)) as gateway, \
                ServerThread(shop.app(), port=shop_port):
            # Another site than the shop: "localhost" is not "127.0.0.1", and another port.
            shop.pixel = custom_pixel(settings, "shop-web", f"http://localhost:{gateway.port}")
            yield Rig(gateway, emulator, shop_url, shop)


def shopify_order(order_id: int, checkout_token: str) -> dict[str, Any]:
    """orders/create as Shopify sends it for the pixel's checkout: the same id, checkout
    token and email; no buyer IP or user agent and a landing URL without ttclid, so what
    TikTok gets of those came from the pixel."""
    doc: dict[str, Any] = copy.deepcopy(orjson.loads(FIXTURE.read_bytes()))
    stamp = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()
    doc.update(id=order_id, created_at=stamp, processed_at=stamp, email=EMAIL,
               checkout_token=checkout_token, cart_token=None, browser_ip=None,
               client_details=None, landing_site="/products/ipod")
    return doc


def webhook(rig: Rig, order: dict[str, Any]) -> None:
    body = orjson.dumps(order)
    signature = base64.b64encode(
        hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    r = httpx.post(f"{rig.gateway.url}/v1/webhooks/shopify/shop", content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": f"wh-{order['id']}", "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": "journey.myshopify.com"})
    assert r.status_code == 200, r.text


def received(rig: Rig, event_id: str) -> list[dict[str, Any]]:
    return [e for e in emu_state(rig.emulator).events if e.get("event_id") == event_id]


def settle(rig: Rig, name: str) -> None:
    """Wait until a sentinel sent now has reached TikTok: what was sendable is sent by then."""
    r = httpx.post(f"{rig.gateway.url}/v1/events", headers=AUTH,
                   json={"event": "ViewContent", "event_id": f"sentinel-{name}"})
    assert r.status_code == 202, r.text
    wait_for(lambda: bool(received(rig, f"sentinel-{name}")), timeout=15)


@dataclasses.dataclass
class Trail:
    """What the pixel sent and what the sandbox's ttq got, over the pages of a journey."""

    sent: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def visit(page: Any, url: str, n: int, trail: Trail, *, then: str | None = None) -> None:
    """Open `url` (and run `then` in it), wait until the pixel's `n` hits have been
    answered, and keep them: the sandbox forgets them with the page."""
    page.goto(url)
    if then is not None:
        page.evaluate(then)
    answered(page, n, trail)


def answered(page: Any, n: int, trail: Trail) -> None:
    wait_for(lambda: len(hits(page)) >= n and all(
        "status" in h or "error" in h for h in hits(page)), timeout=15)
    found = hits(page)
    assert len(found) == n, [h["body"] for h in found]
    assert touched(page) == []  # never the sandbox's own document.cookie or storage
    trail.sent.extend(found)
    trail.calls.extend(ttq_calls(page))


@dataclasses.dataclass
class Journey:
    order_id: int
    token: str
    ttclid: str
    order: dict[str, Any]

    @property
    def gid(self) -> str:
        return f"gid://shopify/OrderIdentity/{self.order_id}"

    @property
    def purchase_id(self) -> str:
        return f"ord_{self.order_id}_complete_payment"


def pages(rig: Rig, name: str, j: Journey) -> dict[str, str]:
    """A shop's pages for journey `name`: landing, product, checkout, thank-you."""
    item = j.order["line_items"][0]
    pending = checkout(j.order, j.token, order_gid=None, email=EMAIL)
    done = checkout(j.order, j.token, order_gid=j.gid, email=EMAIL)
    cart = {"id": f"gid://shopify/Cart/c1-{name}?key=k{name}", "lines": [],
            "totalQuantity": 1, "attributes": [], "cost": {"totalAmount": money(199.0)}}
    shop = rig.shop
    return {k: rig.shop_url + v for k, v in {
        "landing": shop.page(f"/{name}/", publish("page_viewed")),
        "product": shop.page(f"/{name}/products/ipod", publish("page_viewed") + publish(
            "product_viewed", {"productVariant": variant(item)})),
        "checkout": shop.page(f"/{name}/checkouts/cn/{j.token}", publish("page_viewed")
                              + publish("checkout_started", {"checkout": pending})
                              + publish("payment_info_submitted", {"checkout": pending}),
                              cart=cart),
        "thanks": shop.page(f"/{name}/checkouts/cn/{j.token}/thank-you",
                            publish("page_viewed")
                            + publish("checkout_completed", {"checkout": done})),
    }.items()}


def add_to_cart(item: dict[str, Any]) -> str:
    return publish("product_added_to_cart", {"cartLine": {
        "cost": {"totalAmount": money(199.0)}, "merchandise": variant(item), "quantity": 1}})


def shop_cookies(context: Any, url: str) -> dict[str, str]:
    return {c["name"]: c["value"] for c in context.cookies(url)}


def test_an_accepting_visitor_gets_one_purchase_with_the_pixels_context(
        rig: Rig, context: Any) -> None:
    j = Journey(5633837583468, "b1946ac92492d2347c6235b4d2611184", "E.C.P.pixel-accept",
                shopify_order(5633837583468, "b1946ac92492d2347c6235b4d2611184"))
    url = pages(rig, "accept", j)
    context.add_cookies([{"name": "_ttp", "value": TTP, "url": rig.shop_url},
                         {"name": "_fbp", "value": FBP, "url": rig.shop_url}])
    page = context.new_page()
    trail = Trail()
    # Not answered yet: once the pixel has read the shop's cookies (7) and seen the page
    # view, it has sent nothing; the view goes with the answer.
    page.goto(url["landing"] + f"?ttclid={j.ttclid}")
    wait_for(lambda: settled_unsent(page, 7) and sandbox_frame(page).evaluate(
        "window.init !== undefined"))
    assert "prx_sid" not in shop_cookies(context, rig.shop_url)
    page.click("#accept")
    answered(page, 1, trail)
    jar = shop_cookies(context, rig.shop_url)
    assert re.fullmatch(r"s_[0-9a-f]{32}", jar["prx_sid"]), jar
    assert jar["prx_ttclid"] == j.ttclid and jar["prx_consent"] == "granted"
    visit(page, url["product"], 3, trail, then=add_to_cart(j.order["line_items"][0]))
    visit(page, url["checkout"], 3, trail)
    visit(page, url["thanks"], 2, trail)
    sent, calls = trail.sent, trail.calls

    # Every hit went from the sandbox (opaque origin, no credentials) and was taken.
    assert [h["status"] for h in sent] == [202] * 9
    assert {h["credentials"] for h in sent} == {"omit"}
    bodies = [h["body"] for h in sent]
    assert {b["sid"] for b in bodies} == {jar["prx_sid"]}  # one session across pages
    assert {b["origin"] for b in bodies} == {rig.shop_url}
    assert {b["consent"]["marketing"] for b in bodies} == {"granted"}
    assert [b["event"] for b in bodies] == [
        "PageView", "PageView", "ViewContent", "AddToCart", "PageView", "InitiateCheckout",
        "AddPaymentInfo", "PageView", "Purchase"]
    # The shop's pages, never the sandbox's own URL.
    assert bodies[0]["page"]["url"] == url["landing"] + f"?ttclid={j.ttclid}"
    assert all(b["page"]["url"].startswith(rig.shop_url + "/accept/") for b in bodies)
    assert {b["user"]["ttp"] for b in bodies} == {TTP}
    assert {b["user"]["fbp"] for b in bodies} == {FBP}  # read the same way, for Meta
    # The cart (its GID, as the webhook's token) with the checkout page's first hit; the
    # checkout token with each checkout event, so the webhook's order finds the session.
    assert [b.get("link") for b in bodies[4:]] == [
        {"cart_token": "c1-accept"}, {"checkout_token": j.token},
        {"checkout_token": j.token}, None, {"checkout_token": j.token}]
    purchase = bodies[-1]
    assert purchase["properties"]["order_id"] == str(j.order_id)
    assert [c["content_id"] for c in purchase["properties"]["contents"]] == [
        li["sku"] for li in j.order["line_items"]]
    assert (purchase["properties"]["value"], purchase["properties"]["currency"]) == (
        409.94, "USD")
    assert purchase["user"]["email"] == EMAIL and purchase["user"]["external_id"] == "207119551"
    # The TikTok Pixel in the sandbox got the purchase under the server's event_id, and the
    # checkout under the one the checkouts/create webhook derives from its token.
    [pixel_purchase] = [c for c in calls if c["name"] == "CompletePayment"]
    assert pixel_purchase["event_id"] == purchase["event_id"] == j.purchase_id
    [pixel_checkout] = [c for c in calls if c["name"] == "InitiateCheckout"]
    assert pixel_checkout["event_id"] == bodies[5]["event_id"] == (
        f"chk_{j.token}_initiate_checkout")
    assert [c["name"] for c in calls if c["name"] != "identify"] == [
        "Pageview", "Pageview", "ViewContent", "AddToCart", "Pageview", "InitiateCheckout",
        "AddPaymentInfo", "Pageview", "CompletePayment"]
    # No cookie of the gateway's own: nothing of the visitor on the gateway's site.
    assert not shop_cookies(context, f"http://localhost:{rig.gateway.port}")

    webhook(rig, j.order)
    wait_for(lambda: bool(received(rig, j.purchase_id)), timeout=15)
    settle(rig, "accept")
    [event] = received(rig, j.purchase_id)
    assert event["event"] == "CompletePayment"
    user = event["user"]
    assert user["ttclid"] == j.ttclid and user["ttp"] == TTP
    assert user["ip"] == "127.0.0.1"
    assert user["user_agent"] == page.evaluate("navigator.userAgent")
    assert user["email"] == [hashlib.sha256(EMAIL.encode()).hexdigest()]
    assert event["properties"]["order_id"] == str(j.order_id)
    # One purchase of the order at TikTok, whatever its copies.
    assert [e for e in emu_state(rig.emulator).events
            if e.get("properties", {}).get("order_id") == str(j.order_id)] == [event]
    d = httpx.get(f"{rig.gateway.url}/v1/diagnostics", params={"window": "1h"},
                  headers=ADMIN).json()
    assert d["collect_refused"] == []


def test_a_declining_visitor_sends_nothing_of_theirs_not_even_the_order(
        rig: Rig, context: Any) -> None:
    j = Journey(5633837583469, "0cc175b9c0f1b6a831c399e269772661", "E.C.P.pixel-decline",
                shopify_order(5633837583469, "0cc175b9c0f1b6a831c399e269772661"))
    url = pages(rig, "decline", j)
    context.add_cookies([{"name": "_ttp", "value": TTP, "url": rig.shop_url}])
    page = context.new_page()
    trail = Trail()
    # The answer alone goes (the held page view is dropped).
    visit(page, url["landing"] + f"?ttclid={j.ttclid}", 1, trail,
          then="document.getElementById('decline').click()")
    # Later pages know the "no" from the shop's cookie: nothing but the cart and checkout
    # tokens, so that the order reported later follows the answer.
    visit(page, url["product"], 0, trail, then=add_to_cart(j.order["line_items"][0]))
    visit(page, url["checkout"], 3, trail)
    visit(page, url["thanks"], 1, trail)

    sent = trail.sent
    assert [h["status"] for h in sent] == [202] * 5
    bodies = [h["body"] for h in sent]
    assert {frozenset(b) for b in bodies[1:]} == {frozenset(
        {"k", "origin", "sid", "consent", "consent_source", "link"})}
    assert set(bodies[0]) == {"k", "origin", "sid", "consent", "consent_source"}
    assert {b["consent"]["marketing"] for b in bodies} == {"denied"}
    assert [b["link"] for b in bodies[1:]] == [
        {"cart_token": "c1-decline"}, {"checkout_token": j.token},
        {"checkout_token": j.token}, {"checkout_token": j.token}]
    assert trail.calls == []
    jar = shop_cookies(context, rig.shop_url)
    assert jar.get("prx_consent") == "denied"
    assert not {"prx_sid", "prx_ttclid"} & set(jar)

    webhook(rig, j.order)
    settle(rig, "decline")
    mine = [e for e in emu_state(rig.emulator).events
            if e.get("properties", {}).get("order_id") == str(j.order_id)
            or e.get("user", {}).get("ttclid") == j.ttclid]
    assert mine == []
    r = httpx.get(f"{rig.gateway.url}/v1/deliveries", params={"event_id": j.purchase_id},
                  headers=ADMIN)
    assert [row["state"] for row in r.json()["deliveries"]] == ["suppressed"]


def test_with_a_meta_destination_metas_pixel_gets_each_event_under_the_same_event_id(
        rig: Rig, context: Any) -> None:
    """The pixel written for a config with a Meta destination as well: Meta's bridge calls the
    sandbox's fbq with Meta's names and parameters and the event_id TikTok's ttq and the
    server get; the _fbc cookie goes with the hits as user.fbc."""
    # The gateway stays as it is (TikTok only): only the pasted code differs.
    base = make_settings(":memory:", rig.emulator.url)
    web = SourceSettings(name="shop-web", kind="browser", key=Secret(SITE_KEY),
                         allowed_origins=(rig.shop_url,))
    meta = meta_destination(name="meta", pixel_id="123456789012345",
                            access_token=Secret("meta-token"))
    settings = dataclasses.replace(base, sources=(web,),
                                   destinations=(*base.destinations, meta))
    before = rig.shop.pixel
    rig.shop.pixel = custom_pixel(settings, "shop-web", f"http://localhost:{rig.gateway.port}")
    try:
        j = Journey(5633837583470, "c1946ac92492d2347c6235b4d2611186", "E.C.P.pixel-meta",
                    shopify_order(5633837583470, "c1946ac92492d2347c6235b4d2611186"))
        url = pages(rig, "meta", j)
        fbc = "fb.1.1733300000000.AbCmeta"
        context.add_cookies([{"name": "_fbc", "value": fbc, "url": rig.shop_url}])
        page = context.new_page()
        trail = Trail()
        page.goto(url["landing"])
        wait_for(lambda: settled_unsent(page, 7))
        page.click("#accept")
        answered(page, 1, trail)
        visit(page, url["product"], 2, trail)
        product_fbq = fbq_calls(page)
        visit(page, url["thanks"], 2, trail)
        fbq = product_fbq + fbq_calls(page)
    finally:
        rig.shop.pixel = before

    bodies = [h["body"] for h in trail.sent]
    assert [h["status"] for h in trail.sent] == [202] * 5
    assert {b["user"]["fbc"] for b in bodies} == {fbc}
    by_id = {b["event_id"]: b["event"] for b in bodies}
    # Meta's names: PageView and ViewContent are standard; the ids are the server's.
    assert [(c[0], c[1], by_id.get(c[3]["eventID"])) for c in fbq] == [
        ("track", "PageView", "PageView"), ("track", "ViewContent", "ViewContent"),
        ("track", "PageView", "PageView"), ("track", "Purchase", "Purchase")]
    purchase = fbq[-1]
    assert purchase[3] == {"eventID": j.purchase_id}  # the first destination's (TikTok's) id
    assert [c["event_id"] for c in trail.calls if c["name"] == "CompletePayment"] == [
        j.purchase_id]
    params = purchase[2]
    assert (params["value"], params["currency"], params["order_id"]) == (
        409.94, "USD", str(j.order_id))
    skus = [li["sku"] for li in j.order["line_items"]]
    assert [c["id"] for c in params["contents"]] == skus == params["content_ids"]
    assert all(set(c) <= {"id", "quantity", "item_price"} for c in params["contents"])
    assert params["content_type"] == "product" and params["num_items"] == sum(
        li["quantity"] for li in j.order["line_items"])
