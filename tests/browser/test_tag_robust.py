"""The tag where the page is hostile to it, in a real Chromium: a cookie jar that throws
(an opaque-origin sandbox), a Pixel that throws, and a host that hands the tag its context
(ttp, ttclid, page URL, session id) because the tag cannot read it itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.pipeline.normalize import hash_email
from tests.browser.shop import (
    Site,
    collect_hits,
    cookies,
    loaded,
    open_tag_site,
    wait_hits,
)
from tests.conftest import SOURCE_KEY
from tests.support import wait_for

pytest.importorskip("playwright.sync_api")
OPEN_KEY = "site-key-robust-open"
STRICT_KEY = "site-key-robust-strict"  # consent_required = true
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}

# What an opaque-origin frame does to a script reading the cookie jar, on a normal page:
# the getter throws a SecurityError (the setter still works, so the stand-in Pixel's _ttp
# is written and simply cannot be read back).
COOKIE_THROWS = """<script>(function () {
  var real = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
  Object.defineProperty(document, 'cookie', {configurable: true,
    get: function () { throw new DOMException('sandboxed', 'SecurityError'); },
    set: function (v) { real.set.call(document, v); }});
})();</script>"""

# One of everything the tag queues, in the order a checkout page would call it; the first
# command reads the cookie jar (for _ttp), so before the fix it took the rest down with it.
EVERY_COMMAND = """<script>
  pixelrelay('track', 'ViewContent', {content_id: 'SKU-R'}, {event_id: 'vc-robust'});
  pixelrelay('identify', {email: 'Robust@Example.com'});
  pixelrelay('link', {cart_token: 'cart-robust'});
  pixelrelay('consent', {marketing: true, ad_user_data: true, ad_personalization: true});
  pixelrelay('track', 'Purchase', {order_id: 'R-100', value: 9.5, currency: 'EUR'});
</script>"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with open_tag_site(tmp_path_factory.mktemp("gw"), OPEN_KEY, STRICT_KEY) as site:
        yield site


def statuses(page: Any) -> list[int]:
    """The status of every /v1/collect hit the page gets an answer to, from now on."""
    seen: list[int] = []

    def done(response: Any) -> None:
        if "/v1/collect" in response.url and response.request.method == "POST":
            seen.append(response.status)

    page.on("response", done)
    return seen


def kind(hit: dict[str, Any]) -> str:
    for key in ("event", "identify", "link"):
        if key in hit:
            return key if key != "event" else hit["event"]
    return "consent"


def test_a_cookie_jar_that_throws_loses_no_queued_command(site: Site, context: Any) -> None:
    url = site.page("/robust/checkout", EVERY_COMMAND, key=STRICT_KEY, head=COOKIE_THROWS)
    page = context.new_page()
    hits, got = collect_hits(page), statuses(page)
    page.goto(url + "?ttclid=E.C.P.robust")
    loaded(page)
    assert page.evaluate("() => { try { document.cookie; return false; } "
                         "catch (e) { return e.name === 'SecurityError'; } }")
    wait_for(lambda: page.wait_for_timeout(20) or len(got) >= 4)
    # Every command's hit went, in order, and the gateway took each one.
    assert [kind(hit) for hit in hits] == ["ViewContent", "identify", "link", "Purchase"]
    assert got == [202] * 4
    assert hits[2]["link"] == {"cart_token": "cart-robust"}
    purchase = site.delivered("ord_R-100_complete_payment")
    assert purchase["user"]["email"] == [hash_email("Robust@Example.com")]
    assert purchase["user"]["ttclid"] == "E.C.P.robust"
    assert site.delivered("vc-robust")["limited_data_use"] is False


def test_a_pixel_that_throws_still_yields_every_server_event(site: Site, context: Any) -> None:
    broken = """<script>window.ttq = {track: function () { throw new Error('pixel broke'); },
      identify: function () { throw new Error('pixel broke'); }};</script>"""
    url = site.page("/robust/broken-pixel", """<script>
      pixelrelay('identify', {email: 'broken@example.com'});
      pixelrelay('track', 'AddToCart', {content_id: 'SKU-B'}, {event_id: 'atc-broken'});
      pixelrelay('track', 'Purchase', {order_id: 'R-200', value: 3, currency: 'EUR'});
    </script>""", pixel=False, head=broken)
    page = context.new_page()
    page.goto(url)
    site.delivered("atc-broken")
    assert site.delivered("ord_R-200_complete_payment")["user"]["email"] == [
        hash_email("broken@example.com")]


def test_an_opaque_origin_sandbox_attempts_every_hit_with_the_context_handed_in(
        site: Site, context: Any) -> None:
    """Shopify's custom-pixel sandbox: a real `sandbox="allow-scripts"` frame, where reading
    document.cookie or localStorage throws. What the gateway answers a null origin is
    another matter; here the hits are answered by the test, and what the tag sent is
    checked."""
    shop_page = "https://shop.example/products/tee?variant=1"
    opts = {"url": shop_page, "referrer": "https://www.tiktok.com/",
            "ttp": "2.sandbox-ttp", "ttclid": "E.C.P.sandbox",
            "sessionId": "s_" + "ab" * 16}
    frame = site.page("/robust/sandboxed", EVERY_COMMAND, key=STRICT_KEY, pixel=False,
                      init=opts)
    host = site.page("/robust/host", f'<iframe sandbox="allow-scripts" src="{frame}"></iframe>',
                     pixel=False)
    page = context.new_page()
    sent: list[dict[str, Any]] = []

    def answer(route: Any) -> None:
        sent.append(orjson.loads(route.request.post_data or "{}"))
        # As the gateway answers a null origin: "*", no credentials (none can be kept).
        route.fulfill(status=202, content_type="application/json", body='{"accepted": 1}',
                      headers={"Access-Control-Allow-Origin": "*"})

    page.route("**/v1/collect", answer)
    page.goto(host)
    inner = page.frames[1]
    inner.wait_for_function("window.pixelrelay && window.pixelrelay.loaded")
    assert inner.evaluate("() => { var n = 0; try { document.cookie; } catch (e) { n++; } "
                          "try { localStorage.length; } catch (e) { n++; } return n; }") == 2
    wait_for(lambda: page.wait_for_timeout(20) or len(sent) >= 4)
    page.wait_for_timeout(300)  # the answers were readable: nothing is sent again
    assert [kind(hit) for hit in sent] == ["ViewContent", "identify", "link", "Purchase"]
    for hit in sent:
        assert hit["origin"] == "https://shop.example"  # what a null Origin cannot say
        assert hit["sid"] == opts["sessionId"]
        assert hit["page"] == {"url": shop_page, "referrer": "https://www.tiktok.com/"}
        assert hit["user"]["ttp"] == "2.sandbox-ttp"
        assert hit["user"]["ttclid"] == "E.C.P.sandbox"
    assert sent[-1]["event_id"] == "ord_R-100_complete_payment"


def test_init_options_reach_the_session_and_the_events(site: Site, context: Any) -> None:
    sid = "s_" + "cd" * 16
    given = f"{site.shop.url}/app/products/7?utm_source=tiktok"
    url = site.page("/robust/spa", """<script>
      pixelrelay('track', 'ViewContent', {content_id: 'SKU-7'}, {event_id: 'vc-options'});
    </script>""", pixel=False, init={"url": given, "referrer": "https://www.tiktok.com/",
                                     "ttp": "2.given-ttp", "ttclid": "E.C.P.given",
                                     "sessionId": sid})
    page = context.new_page()
    hits = collect_hits(page)
    page.goto(url)  # no ttclid in the real URL, no _ttp cookie: only what init handed in
    event = site.delivered("vc-options")
    assert event["page"]["url"] == given
    assert (event["user"]["ttp"], event["user"]["ttclid"]) == ("2.given-ttp", "E.C.P.given")
    wait_hits(page, hits, 1)
    # The proposed session id became the session (no cookie yet), and the page knows it.
    wait_for(lambda: page.evaluate("pixelrelay.sessionId") == sid)
    assert cookies(context)["prx_sid"]["value"] == sid
    # An order the backend reports for that session inherits the ttp the host handed in.
    r = httpx.post(f"{site.gateway.url}/v1/events", headers=AUTH, json={
        "event": "Purchase", "session_id": sid,
        "properties": {"order_id": "R-300", "value": 7, "currency": "EUR"}})
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    assert site.delivered("ord_R-300_complete_payment")["user"]["ttp"] == "2.given-ttp"
    loaded(page)
