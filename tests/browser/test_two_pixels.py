"""One purchase, two Pixels and two platforms in a real Chromium (issues 26/27): the tag served
with TikTok's and Meta's bridges calls a stand-in `ttq` and `fbq` with one event_id, which is
the id both emulators get from the server; Meta's click and browser ids (fbclid, _fbp) ride
along. Nothing is loaded from outside loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pixelrelay.config import Secret, Settings, SourceSettings
from pixelrelay.destinations.meta.settings import meta_destination
from tests.browser.shop import Site, open_site, ttq_calls
from tests.conftest import make_settings
from tests.support import ServerThread, wait_for

pytest.importorskip("playwright.sync_api")
SITE_KEY = "site-key-two-pixels"
META_TOKEN = "meta-browser-token"
META_PIXEL = "123456789012345"
FBP = "fb.1.1596403881668.1116446470"

# What Meta's Pixel would have received, recorded; it sets _fbp as the Pixel does.
STAND_IN_FBQ = f"""<script>
window.fbqCalls = [];
window.fbq = function () {{
  fbqCalls.push(JSON.parse(JSON.stringify(Array.prototype.slice.call(arguments))));
}};
document.cookie = '_fbp={FBP}; path=/';
</script>"""


@dataclasses.dataclass
class TwoSites:
    site: Site
    meta: ServerThread

    def meta_received(self, event_id: str) -> list[dict[str, Any]]:
        emu = self.meta.server.config.app.state.meta_emulator  # type: ignore[attr-defined]
        return [e for e in emu.events if e.get("event_id") == event_id]


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoSites]:
    from pixelrelay.emulator.meta import MetaEmulator, create_meta_emulator_app

    emu = MetaEmulator(access_tokens=[META_TOKEN], pixel_ids=[META_PIXEL])
    outer = Starlette(routes=[Mount("/_meta", app=create_meta_emulator_app(emu))])
    outer.state.meta_emulator = emu
    with ServerThread(outer) as meta:
        def settings(shop_origin: str, emulator_url: str) -> Settings:
            base = make_settings(Path(tmp_path_factory.mktemp("gw")) / "gw.db", emulator_url)
            web = SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                                 allowed_origins=(shop_origin,))
            second = meta_destination(name="meta", access_token=Secret(META_TOKEN),
                                      pixel_id=META_PIXEL, api_url=f"{meta.url}/_meta")
            return dataclasses.replace(base, sources=(*base.sources, web),
                                       destinations=(*base.destinations, second))

        with open_site(SITE_KEY, settings) as site:
            yield TwoSites(site, meta)


def fbq_calls(page: Any) -> list[list[Any]]:
    calls: list[list[Any]] = page.evaluate("window.fbqCalls || []")
    return calls


def test_one_purchase_goes_to_both_pixels_and_both_platforms_with_one_event_id(
        two: TwoSites, context: Any) -> None:
    site = two.site
    url = site.page("/thanks", """<script>
      pixelrelay('consent', {marketing: true});
      pixelrelay('track', 'Purchase', {order_id: '42', value: 9, currency: 'EUR',
        contents: [{content_id: 'SKU-1', quantity: 1, price: 9}]});
      pixelrelay('track', 'Wishful Thinking', {value: 1});
    </script>""", head=STAND_IN_FBQ)
    page = context.new_page()
    page.goto(url + "?fbclid=AbC")
    event_id = "ord_42_complete_payment"
    wait_for(lambda: len(fbq_calls(page)) >= 3 and len(ttq_calls(page)) >= 2)

    purchase = next(c for c in ttq_calls(page) if c["name"] == "CompletePayment")
    assert purchase["event_id"] == event_id
    fb = fbq_calls(page)
    assert fb[0] == ["consent", "grant"]
    assert fb[1] == ["track", "Purchase", {
        "value": 9, "currency": "EUR", "order_id": "42",
        "contents": [{"id": "SKU-1", "quantity": 1, "item_price": 9}],
        "content_ids": ["SKU-1"]}, {"eventID": event_id}]
    custom = fb[2]
    assert custom[:3] == ["trackCustom", "Wishful Thinking", {"value": 1}]
    custom_ttq = next(c for c in ttq_calls(page) if c["name"] == "Wishful Thinking")
    assert custom[3] == {"eventID": custom_ttq["event_id"]}  # one id for both Pixels

    tiktok = site.delivered(event_id)
    assert tiktok["event"] == "CompletePayment"
    wait_for(lambda: bool(two.meta_received(event_id)), timeout=15)
    meta = two.meta_received(event_id)[0]
    assert meta["event_name"] == "Purchase" and meta["action_source"] == "website"
    user = meta["user_data"]
    assert user["fbp"] == FBP
    assert user["fbc"].startswith("fb.1.") and user["fbc"].endswith(".AbC")
    assert "fbc" not in tiktok["user"] and "fbp" not in tiktok["user"]


def test_a_page_without_metas_pixel_still_sends_its_ids_and_a_broken_one_costs_nothing(
        two: TwoSites, context: Any) -> None:
    site = two.site
    broken = """<script>window.fbq = function () { throw new Error('broken Pixel'); };</script>"""
    url = site.page("/broken", """<script>
      pixelrelay('track', 'Purchase', {order_id: '43', value: 5, currency: 'EUR'});
    </script>""", head=broken)
    page = context.new_page()
    page.goto(url)
    event_id = "ord_43_complete_payment"
    wait_for(lambda: any(c["event_id"] == event_id for c in ttq_calls(page)))
    assert site.delivered(event_id)["event"] == "CompletePayment"
    wait_for(lambda: bool(two.meta_received(event_id)), timeout=15)
