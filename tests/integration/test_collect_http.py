"""The browser source over real HTTP: /tag.js, /v1/collect, cookies, CORS, context restore."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, ServerSettings, SessionSettings, SourceSettings
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, emu_state, make_settings
from tests.support import ServerThread, wait_for

SITE_KEY = "site-key-0001"
STRICT_KEY = "site-key-strict"
SHOP_SECRET = "shpss_collect_0001"
ORDER = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders-create.json"
ORIGIN = "http://shop.test"
UA = "Mozilla/5.0 (pixelrelay test)"
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "gw.db"


@pytest.fixture
def gateway(db: Path, emulator: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(db, emulator.url, event_map={"Lead": "Contact"})
    browser = (SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                              allowed_origins=(ORIGIN,)),
               SourceSettings(name="strict", kind="browser", key=Secret(STRICT_KEY),
                              allowed_origins=(ORIGIN,), consent_required=True,
                              page_views=True),
               SourceSettings(name="shop", kind="shopify", key=Secret(""),
                              secret=Secret(SHOP_SECRET)))
    settings = dataclasses.replace(
        base, sources=base.sources + browser,
        server=ServerSettings(admin_token=Secret(ADMIN_TOKEN), trusted_proxies=("127.0.0.1",)),
        sessions=SessionSettings(click_id_cookie_days=30, session_cookie_days=1))
    with ServerThread(create_app(settings)) as server:
        yield server


def collect(gw: ServerThread, body: dict[str, Any], *, key: str = SITE_KEY,
            origin: str = ORIGIN, cookies: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(cookies=cookies) as client:
        return client.post(f"{gw.url}/v1/collect", content=orjson.dumps({"k": key, **body}),
                           headers={"Content-Type": "text/plain;charset=UTF-8",
                                    "Origin": origin, "User-Agent": UA, **(headers or {})})


def set_cookies(r: httpx.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie line."""
    return {line.split("=", 1)[0]: line for line in r.headers.get_list("set-cookie")}


def received(emulator: ServerThread, event_id: str) -> list[dict[str, Any]]:
    return [e for e in emu_state(emulator).events if e.get("event_id") == event_id]


def delivered(emulator: ServerThread, event_id: str) -> dict[str, Any]:
    wait_for(lambda: bool(received(emulator, event_id)))
    return received(emulator, event_id)[0]


def enriched_from(db: Path, event_id: str) -> str | None:
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM events WHERE event_id = ?",
                               (event_id,)).fetchone()
    value: str | None = orjson.loads(body)["enriched_from"]
    return value


def landing(gw: ServerThread, ttclid: str = "E.C.P.land1") -> httpx.Response:
    r = collect(gw, {"event": "ViewContent", "event_id": f"vc-{ttclid}",
                     "page": {"url": f"https://shop.test/p/1?ttclid={ttclid}&utm=x"},
                     "properties": {"content_id": "SKU-1"}},
                cookies={"_ttp": "2.ttp-cookie"})
    assert r.status_code == 202, r.text
    return r


def test_tag_is_cacheable_and_embeds_the_servers_mapping(gateway: ServerThread) -> None:
    r = httpx.get(f"{gateway.url}/tag.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert "max-age" in r.headers["cache-control"]
    assert '"Lead":"Contact"' in r.text and '"lead":"Contact"' in r.text
    assert '"purchase":"CompletePayment"' in r.text
    assert '"ordercompleted":"CompletePayment"' in r.text
    again = httpx.get(f"{gateway.url}/tag.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    strict = httpx.get(f"{gateway.url}/tag.js", params={"k": STRICT_KEY})
    assert '"consentRequired":true' in strict.text and '"pageViews":true' in strict.text
    assert strict.headers["etag"] != r.headers["etag"]


def test_landing_sets_first_party_cookies_and_forwards_context(
        gateway: ServerThread, emulator: ServerThread, db: Path) -> None:
    r = landing(gateway)
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in r.headers["vary"]
    cookies = set_cookies(r)
    sid = cookies["prx_sid"]
    assert "SameSite=Lax" in sid and "HttpOnly" in sid and "Max-Age=86400" in sid
    assert "Secure" not in sid  # plain http here
    assert cookies["prx_ttclid"].startswith("prx_ttclid=E.C.P.land1;")
    assert f"Max-Age={30 * 86400}" in cookies["prx_ttclid"]
    assert r.json()["session_id"] == sid.split(";")[0].split("=")[1]
    user = delivered(emulator, "vc-E.C.P.land1")["user"]
    assert user == {"ttclid": "E.C.P.land1", "ttp": "2.ttp-cookie", "ip": "127.0.0.1",
                    "user_agent": UA}
    # The hit's own context is the event's own data: the diagnostics count only restorations.
    assert enriched_from(db, "vc-E.C.P.land1") is None


def test_https_behind_a_trusted_proxy_gets_secure_cookies_and_the_forwarded_ip(
        gateway: ServerThread, emulator: ServerThread) -> None:
    r = collect(gateway, {"event": "ViewContent", "event_id": "vc-proxy"},
                headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.5",
                         "X-Forwarded-Proto": "https"})
    assert r.status_code == 202, r.text
    assert "Secure" in set_cookies(r)["prx_sid"]
    # 127.0.0.1 is the trusted proxy; the right-most other hop is the visitor.
    assert delivered(emulator, "vc-proxy")["user"]["ip"] == "203.0.113.5"


def test_refusals(gateway: ServerThread) -> None:
    assert collect(gateway, {"event": "ViewContent"}, key="nope").status_code == 401
    bad = collect(gateway, {"event": "ViewContent"}, origin="https://evil.example")
    assert bad.status_code == 403 and "access-control-allow-origin" not in bad.headers
    pre = httpx.options(f"{gateway.url}/v1/collect",
                        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Pixelrelay-Key" in pre.headers["access-control-allow-headers"]
    evil = httpx.options(f"{gateway.url}/v1/collect", headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    # A key in the header works as well as the body's k.
    r = httpx.post(f"{gateway.url}/v1/collect", content=b'{"event":"ViewContent"}',
                   headers={"X-Pixelrelay-Key": SITE_KEY, "Origin": ORIGIN})
    assert r.status_code == 202 and r.json()["accepted"] == 1


def test_backend_purchase_naming_the_session_gets_its_context(
        gateway: ServerThread, emulator: ServerThread, db: Path) -> None:
    sid = landing(gateway).json()["session_id"]
    r = httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json={
        "event": "Purchase", "session_id": sid, "user": {"email": "a@example.com"},
        "properties": {"order_id": "5001", "value": 10, "currency": "EUR"}})
    assert r.status_code == 202, r.text
    user = delivered(emulator, "ord_5001_complete_payment")["user"]
    assert (user["ttclid"], user["ttp"], user["ip"], user["user_agent"]) == (
        "E.C.P.land1", "2.ttp-cookie", "127.0.0.1", UA)
    assert enriched_from(db, "ord_5001_complete_payment") == "session"


def test_linked_cart_token_and_server_stated_identity_restore_context(
        gateway: ServerThread, emulator: ServerThread, db: Path) -> None:
    r = landing(gateway, "E.C.P.cart")
    cookies = {"prx_sid": r.json()["session_id"], "prx_ttclid": "E.C.P.cart"}
    linked = collect(gateway, {"link": {"cart_token": "cart-abc"}}, cookies=cookies)
    assert linked.status_code == 202 and linked.json()["linked"] == ["cart_token"]
    # The browser's own identify is a claim: it links nothing.
    ident = collect(gateway, {"identify": {"email": "Buyer@Example.com"}}, cookies=cookies)
    assert ident.status_code == 202 and "identified" not in ident.json()
    early = {"event": "Lead", "user": {"email": "buyer@example.com"}}
    assert httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json=early).status_code == 202
    assert "ttclid" not in delivered(emulator, _only_id(emulator, "Contact"))["user"]
    # The order (a server source) names the cart and the email: the token finds the session,
    # and the server's word ties the email to it.
    shopify_like = {"event": "Purchase", "user": {"email": "buyer@example.com"}, "properties": {
        "order_id": "6001", "cart_token": "cart-abc", "value": 5, "currency": "EUR"}}
    assert httpx.post(f"{gateway.url}/v1/events", headers=AUTH,
                      json=shopify_like).status_code == 202
    assert delivered(emulator, "ord_6001_complete_payment")["user"]["ttclid"] == "E.C.P.cart"
    assert enriched_from(db, "ord_6001_complete_payment") == "link"
    later = {"event": "Purchase", "user": {"email": " buyer@example.com"},
             "properties": {"order_id": "6002", "value": 5, "currency": "EUR"}}
    assert httpx.post(f"{gateway.url}/v1/events", headers=AUTH, json=later).status_code == 202
    user = delivered(emulator, "ord_6002_complete_payment")["user"]
    assert user["ttclid"] == "E.C.P.cart" and user["user_agent"] == UA
    assert user["email"] == [hashlib.sha256(b"buyer@example.com").hexdigest()]
    assert enriched_from(db, "ord_6002_complete_payment") == "identity"


def _only_id(emulator: ServerThread, name: str) -> str:
    wait_for(lambda: any(e["event"] == name for e in emu_state(emulator).events))
    return next(e["event_id"] for e in emu_state(emulator).events if e["event"] == name)


def test_own_values_win_and_unknown_identity_stays_plain(
        gateway: ServerThread, emulator: ServerThread, db: Path) -> None:
    sid = landing(gateway, "E.C.P.own").json()["session_id"]
    own = {"event": "Purchase", "session_id": sid, "user": {"ip": "192.0.2.1"},
           "properties": {"order_id": "7001", "value": 1, "currency": "EUR"}}
    stranger = {"event": "Purchase", "user": {"email": "nobody@example.com"},
                "properties": {"order_id": "7002", "value": 1, "currency": "EUR"}}
    assert httpx.post(f"{gateway.url}/v1/events", headers=AUTH,
                      json={"events": [own, stranger]}).status_code == 202
    assert delivered(emulator, "ord_7001_complete_payment")["user"]["ip"] == "192.0.2.1"
    assert "ttclid" not in delivered(emulator, "ord_7002_complete_payment")["user"]
    assert enriched_from(db, "ord_7002_complete_payment") is None


def test_consent_required_source_sets_nothing_without_consent(
        gateway: ServerThread, emulator: ServerThread) -> None:
    page = {"url": "https://shop.test/?ttclid=E.C.P.noconsent"}
    r = collect(gateway, {"event": "ViewContent", "event_id": "vc-nc", "page": page},
                key=STRICT_KEY)
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert not r.headers.get_list("set-cookie") and "session_id" not in r.json()
    link = collect(gateway, {"link": {"cart_token": "c-nc"}}, key=STRICT_KEY)
    assert link.status_code == 202 and link.json()["linked"] == []
    ok = collect(gateway, {"event": "ViewContent", "event_id": "vc-ok", "page": page,
                           "consent": {"marketing": "granted"}}, key=STRICT_KEY)
    assert set_cookies(ok).keys() == {"prx_sid", "prx_ttclid"}
    delivered(emulator, "vc-ok")
    time.sleep(0.3)  # the denied one is kept as suppressed, never forwarded
    assert received(emulator, "vc-nc") == []


def test_shopify_order_with_a_linked_cart_token_gets_the_browser_context(
        gateway: ServerThread, emulator: ServerThread, db: Path) -> None:
    r = landing(gateway, "E.C.P.shopify")
    cookies = {"prx_sid": r.json()["session_id"]}
    assert collect(gateway, {"link": {"cart_token": "68778783ad298f1c80c3bafcddeea02f"}},
                   cookies=cookies).json()["linked"] == ["cart_token"]
    order = orjson.loads(ORDER.read_bytes())
    order.update(created_at=datetime.fromtimestamp(time.time() - 60, UTC).isoformat(),
                 landing_site=None, browser_ip=None,
                 client_details={"browser_ip": None, "user_agent": None})
    body = orjson.dumps(order)
    digest = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest())
    hook = httpx.post(f"{gateway.url}/v1/webhooks/shopify/shop", content=body, headers={
        "X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": digest.decode(),
        "X-Shopify-Webhook-Id": "wh-collect-1", "Content-Type": "application/json"})
    assert hook.status_code == 200, hook.text
    event_id = f"ord_{order['id']}_complete_payment"
    user = delivered(emulator, event_id)["user"]
    assert (user["ttclid"], user["ttp"], user["ip"], user["user_agent"]) == (
        "E.C.P.shopify", "2.ttp-cookie", "127.0.0.1", UA)
    assert enriched_from(db, event_id) == "link"
    # The order tied the buyer's email to the session: a later backend event finds it.
    later = {"event": "Subscribe", "event_id": "sub-bob",
                   "user": {"email": "bob.norman@hostmail.com"}}
    assert httpx.post(f"{gateway.url}/v1/events", headers=AUTH,
                      json=later).status_code == 202
    assert delivered(emulator, "sub-bob")["user"]["ttclid"] == "E.C.P.shopify"
    assert enriched_from(db, "sub-bob") == "identity"


def test_page_script_cannot_claim_another_ip_or_user_agent(
        gateway: ServerThread, emulator: ServerThread) -> None:
    r = collect(gateway, {"event": "ViewContent", "event_id": "vc-spoof",
                          "user": {"ip": "192.0.2.66", "user_agent": "Spoof/1"}})
    assert r.status_code == 202, r.text
    user = delivered(emulator, "vc-spoof")["user"]
    assert (user["ip"], user["user_agent"]) == ("127.0.0.1", UA)
