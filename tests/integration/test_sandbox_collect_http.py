"""Hits from a sandboxed frame (Shopify's custom pixels) over real HTTP: `Origin: null`, the
shop named in the body, no cookies either way; the session and click id in the body."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from pixelrelay.web.credential_guard import BURST
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, emu_state, make_settings
from tests.support import ServerThread, wait_for

SITE_KEY = "site-key-sandbox-1"
SHOP = "https://shop.example"
SID = "s_" + "ab" * 16
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
GRANTED = {"consent": {"marketing": "granted"}, "consent_source": "shopify_privacy"}


@pytest.fixture
def gateway(tmp_path: Path, emulator: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(tmp_path / "s.db", emulator.url)
    site = SourceSettings(name="shop-web", kind="browser", key=Secret(SITE_KEY),
                          allowed_origins=(SHOP,))
    with ServerThread(create_app(dataclasses.replace(
            base, sources=(*base.sources, site)))) as server:
        yield server


def hit(gw: ServerThread, body: dict[str, Any], *, origin: str = "null",
        key: str = SITE_KEY) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/collect", content=orjson.dumps({"k": key, **body}),
                      headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": origin,
                               "User-Agent": "Mozilla/5.0 (sandbox)"})


def test_a_null_origin_naming_an_allowed_shop_is_taken_with_its_session_and_click_id(
        gateway: ServerThread, emulator: ServerThread) -> None:
    # The pixel's landing: its own session id, the ttclid it keeps in the shop's cookie.
    r = hit(gateway, {"origin": SHOP, "sid": SID, "user": {"ttclid": "E.C.P.kept",
                                                            "ttp": "2.ttp"},
                      "page": {"url": f"{SHOP}/products/1"}, **GRANTED})
    assert r.status_code == 202, r.text
    assert r.json()["session_id"] == SID
    # What a text/plain POST from an opaque origin without credentials needs, and no cookie
    # (it would not be kept, and would say nothing the body does not).
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    assert "set-cookie" not in r.headers
    # Without `origin`, the page URL names the shop.
    r = hit(gateway, {"sid": SID, "page": {"url": f"{SHOP}/cart"}, **GRANTED})
    assert r.status_code == 202, r.text
    # The backend's order of this session gets the click id the body handed in.
    r = httpx.post(f"{gateway.url}/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                   json={"event": "Purchase", "session_id": SID,
                         "properties": {"order_id": "9001", "value": 5, "currency": "EUR"}})
    assert r.status_code == 202, r.text
    wait_for(lambda: any(e.get("event_id") == "ord_9001_complete_payment"
                         for e in emu_state(emulator).events), timeout=15)
    [sent] = [e for e in emu_state(emulator).events
              if e.get("event_id") == "ord_9001_complete_payment"]
    assert sent["user"]["ttclid"] == "E.C.P.kept" and sent["user"]["ttp"] == "2.ttp"


def test_a_refused_origin_is_no_guessed_credential(gateway: ServerThread) -> None:
    # More refusals than the credential guard's burst, from one address: all 403, never
    # 429, and the shopper's next hit from the shop is taken.
    for _ in range(BURST + 2):
        r = hit(gateway, {"origin": "https://other.example", **GRANTED})
        assert r.status_code == 403, r.text
        assert "null, naming https://other.example" in r.json()["reason"]
    assert hit(gateway, {"page": {"url": "about:blank"}}).status_code == 403
    assert hit(gateway, {"origin": SHOP, **GRANTED}).status_code == 202
    d = httpx.get(f"{gateway.url}/v1/diagnostics", params={"window": "1h"},
                  headers=ADMIN).json()
    counts = {(x["reason"], x["origin"]): x["count"] for x in d["collect_refused"]}
    assert counts == {("origin_not_allowed", "null, naming https://other.example"): BURST + 2,
                      ("origin_not_allowed", "null, naming no site"): 1}
    # A wrong key still is one: past the burst, the address waits.
    codes = [hit(gateway, {"origin": SHOP}, key="guess").status_code for _ in range(BURST + 1)]
    assert codes == [401] * BURST + [429]


def test_the_dashboard_offers_each_browser_sources_pixel(gateway: ServerThread) -> None:
    page = httpx.get(f"{gateway.url}/", headers=ADMIN).text
    assert "<h2>Shopify custom pixel</h2>" in page and "data-pixel='shop-web'" in page
    # The address the page was reached at, and the source's key, as the command prints.
    assert f"&quot;endpoint&quot;:&quot;{gateway.url}&quot;" in page
    assert f"&quot;key&quot;:&quot;{SITE_KEY}&quot;" in page
