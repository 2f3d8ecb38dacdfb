"""Meta's click and browser ids ride a session (issue 27): a landing with ?fbclid= and an
_fbp cookie, then the backend's order naming that session -> Meta gets fbc and fbp on the
order, TikTok neither; over real HTTP to both emulators."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from pixelrelay.destinations.meta.settings import meta_destination
from tests.conftest import META_PIXEL, META_TOKEN, SOURCE_KEY, emu_state, make_settings, meta_events
from tests.support import ServerThread, wait_for

SITE_KEY = "site-key-click-ids"
FBP = "fb.1.1700000000000.1116446470"
UA = "Mozilla/5.0 (X11; Linux x86_64) pixelrelay-test"






@pytest.fixture
def gateway(tmp_path: Path, emulator: ServerThread, meta: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(tmp_path / "ids.db", emulator.url)
    second = meta_destination(name="meta", access_token=Secret(META_TOKEN),
                              pixel_id=META_PIXEL, api_url=f"{meta.url}/_meta")
    web = SourceSettings(name="web", kind="browser", key=Secret(SITE_KEY))
    settings = dataclasses.replace(base, destinations=(*base.destinations, second),
                                   sources=(*base.sources, web))
    with ServerThread(create_app(settings)) as server:
        yield server


def test_a_landing_fbclid_and_fbp_reach_meta_with_the_backends_order(
        gateway: ServerThread, emulator: ServerThread, meta: ServerThread) -> None:
    before_ms = int(time.time() * 1000)
    landing = httpx.post(
        f"{gateway.url}/v1/collect", headers={"User-Agent": UA, "Cookie": f"_fbp={FBP}"},
        json={"k": SITE_KEY, "event": "PageView", "event_id": "pv-1",
              "page": {"url": "https://shop.example/p/1?fbclid=AbC&utm_source=fb"}})
    assert landing.status_code == 202, landing.text
    sid = landing.json()["session_id"]
    after_ms = int(time.time() * 1000)

    # A later page of the session without the click id or a cookie: the session keeps both.
    again = httpx.post(f"{gateway.url}/v1/collect", headers={"User-Agent": UA}, json={
        "k": SITE_KEY, "sid": sid, "event": "ViewContent", "event_id": "vc-1",
        "page": {"url": "https://shop.example/p/2"}})
    assert again.status_code == 202 and again.json()["session_id"] == sid

    order = httpx.post(f"{gateway.url}/v1/events",
                       headers={"Authorization": f"Bearer {SOURCE_KEY}"}, json={
        "event": "Purchase", "session_id": sid, "user": {"email": "buyer@example.com"},
        "properties": {"order_id": "7001", "value": 12.5, "currency": "EUR"}})
    assert order.status_code == 202, order.text
    event_id = "ord_7001_complete_payment"

    wait_for(lambda: any(e.get("event_id") == event_id for e in meta_events(meta)))
    wait_for(lambda: any(e["event_id"] == event_id for e in emu_state(emulator).events))
    fb = next(e for e in meta_events(meta) if e.get("event_id") == event_id)
    fbc = fb["user_data"]["fbc"]
    prefix, _, ms, fbclid = fbc.split(".")
    # Built from the landing's fbclid, case kept, with the time it was first seen in ms.
    assert (prefix, fbclid) == ("fb", "AbC") and fbc.startswith("fb.1.")
    assert before_ms <= int(ms) <= after_ms
    assert fb["user_data"]["fbp"] == FBP

    # The pages' own events carried them too (Meta's copy of the view).
    view = next(e for e in meta_events(meta) if e.get("event_id") == "vc-1")
    assert (view["user_data"]["fbc"], view["user_data"]["fbp"]) == (fbc, FBP)

    tiktok = next(e for e in emu_state(emulator).events if e["event_id"] == event_id)
    assert "fbc" not in tiktok["user"] and "fbp" not in tiktok["user"]
    assert all("fbc" not in e["user"] and "fbp" not in e["user"]
               for e in emu_state(emulator).events)


def test_a_backends_order_naming_a_landing_with_fbclid_reaches_meta_with_its_fbc(
        gateway: ServerThread, emulator: ServerThread, meta: ServerThread) -> None:
    """No session at all: the server event's own page.url carries the fbclid, and Meta gets
    the fbc made of it, stamped with the event's time in ms; TikTok gets no Meta id."""
    now = int(time.time())
    order = httpx.post(f"{gateway.url}/v1/events",
                       headers={"Authorization": f"Bearer {SOURCE_KEY}"}, json={
        "event": "Purchase", "event_id": "ord-fbclid-1", "timestamp": now,
        "user": {"email": "buyer2@example.com", "user_agent": UA, "ip": "203.0.113.7"},
        "page": {"url": "https://shop.example/thanks?fbclid=IwAR_Zz-9&utm_source=fb"},
        "properties": {"order_id": "7002", "value": 30, "currency": "EUR"}})
    assert order.status_code == 202, order.text

    wait_for(lambda: any(e.get("event_id") == "ord-fbclid-1" for e in meta_events(meta)))
    fb = next(e for e in meta_events(meta) if e.get("event_id") == "ord-fbclid-1")
    assert fb["user_data"]["fbc"] == f"fb.1.{now * 1000}.IwAR_Zz-9"
    wait_for(lambda: any(e["event_id"] == "ord-fbclid-1" for e in emu_state(emulator).events))
    tiktok = next(e for e in emu_state(emulator).events if e["event_id"] == "ord-fbclid-1")
    assert "fbc" not in tiktok["user"]
