"""No raw email or phone anywhere (issue 24, point 2): one run through every source with such
values in every free-form place, then a search of the database and its WAL, the logs,
/metrics, the diagnostics JSON, every trace, the dashboard, the import's output and what
reached TikTok."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, ServerSettings, SourceSettings
from tests.conftest import ACCESS_TOKEN, ADMIN_TOKEN, PIXEL, SOURCE_KEY, emu_state, make_settings
from tests.support import ServerThread, wait_for

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders-create.json"
SITE_KEY = "site-key-pii"
SHOP_SECRET = "shpss_pii_0001"
ORIGIN = "http://shop.test"
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}

# Each source gets people of its own, so a leak names the path it came by.
EMAILS = {src: f"{src}.secret.person@example.org" for src in
          ("api", "tag", "dropin", "shop", "import", "name")}
PHONES = {"api": "+49 170 5550101", "tag": "+49 170 5550202", "dropin": "+49 170 5550303",
          "shop": "+49 170 5550404", "import": "+49 170 5550505", "national": "01705550606"}


def needles() -> list[str]:
    out = []
    for email in EMAILS.values():
        out += [email, email.split("@")[0], email.replace("@", "%40")]
    out += [p.replace(" ", "")[-7:] for p in PHONES.values()]
    return out


def free_form(src: str) -> dict[str, Any]:
    """An event with the source's email and phone in every free-form place an event has."""
    email, phone = EMAILS[src], PHONES[src]
    encoded = email.replace("@", "%40")
    return {
        "page": {"url": f"https://shop.test/u/{encoded}/p?ttclid=E.C.P.{src}&ref={email}"
                        f"&tel={PHONES['national']}#contact={email}",
                 "referrer": f"https://mail.test/inbox/{email}#{phone}"},
        "user": {"user_agent": f"Mozilla/5.0 (pixelrelay test; {email})"},
        "properties": {"value": 10, "currency": "EUR", "description": f"call {phone}",
                       email: "as a key", "note": encoded,
                       "contents": [{"content_id": "SKU-1", "content_name": f"for {email}"}],
                       "deep": _nested({"who": email, "tel": phone}, 12)},
    }


def _nested(leaf: dict[str, Any], depth: int) -> dict[str, Any]:
    doc = leaf
    for _ in range(depth):
        doc = {"n": doc}
    return doc


def shopify_order() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(orjson.loads(FIXTURE.read_bytes()))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    email, phone = EMAILS["shop"], PHONES["shop"]
    doc.update(id=7700001, created_at=stamp, processed_at=stamp, email=email,
               note=f"please call {phone} or write {email}",
               landing_site=f"/p?ttclid=E.C.P.shop&ref={email}#{email}",
               referring_site=f"https://mail.test/{email}",
               note_attributes=[{"name": "contact", "value": email},
                                {"name": email, "value": phone}])
    for item in doc["line_items"]:
        item["properties"] = [{"name": "gift for", "value": f"{email} {phone}"}]
        item["title"] = f"Engraved for {email}"
    doc["billing_address"]["phone"] = phone
    doc["customer"]["note"] = f"VIP {email}"
    return doc


def test_no_raw_email_or_phone_anywhere_after_every_source(
        tmp_path: Path, emulator: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    db = tmp_path / "pii.db"
    base = make_settings(db, emulator.url)
    extra = (SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                            allowed_origins=(ORIGIN,)),
             SourceSettings(name="shop", kind="shopify", key=Secret(""),
                            secret=Secret(SHOP_SECRET)))
    settings = dataclasses.replace(base, sources=(*base.sources, *extra),
                                   server=ServerSettings(admin_token=Secret(ADMIN_TOKEN)))
    settings = dataclasses.replace(settings, destinations=tuple(
        dataclasses.replace(d, default_phone_region="DE") for d in settings.destinations))
    with ServerThread(create_app(settings)) as gw:
        answers = _send_everything(gw, tmp_path, db)
        ids = ["api-1", "tag-1", "dropin-1", "ord_7700001_complete_payment", "imp-1"]
        wait_for(lambda: all(any(e["event_id"] == i for e in emu_state(emulator).events)
                             for i in ids), timeout=20)
        # Read while the gateway runs, so the WAL (not yet checkpointed away) is read too.
        assert any(p.name.endswith("-wal") for p in tmp_path.iterdir())
        seen = {
            "answers": answers,
            "database and WAL": b"".join(p.read_bytes() for p in tmp_path.iterdir()
                                         if p.name.startswith("pii.db")).decode("latin-1"),
            "/metrics": httpx.get(f"{gw.url}/metrics", headers=ADMIN).text,
            "/v1/diagnostics": httpx.get(f"{gw.url}/v1/diagnostics", headers=ADMIN).text,
            "dashboard": httpx.get(f"{gw.url}/", headers=ADMIN).text,
            "traces": "".join(httpx.get(f"{gw.url}/v1/events/{i}/trace", headers=ADMIN).text
                              + httpx.get(f"{gw.url}/v1/events/{i}/trace",
                                          headers={**ADMIN, "Accept": "text/html"}).text
                              for i in ids),
            "TikTok": orjson.dumps(emu_state(emulator).events).decode(),
        }
    seen["logs"] = caplog.text
    leaks = [(where, needle) for where, text in seen.items() for needle in needles()
             if needle.lower() in text.lower()]
    assert not leaks
    # What is not personal data still arrives: the click id, the hashed email, the contents.
    api = next(e for e in emu_state(emulator).events if e["event_id"] == "api-1")
    assert api["user"]["ttclid"] == "E.C.P.api"
    assert api["properties"]["contents"][0]["content_id"] == "SKU-1"
    shop = next(e for e in emu_state(emulator).events
                if e["event_id"] == "ord_7700001_complete_payment")
    assert shop["user"]["email"] == [hashlib.sha256(EMAILS["shop"].encode()).hexdigest()]


def _send_everything(gw: ServerThread, tmp_path: Path, db: Path) -> str:
    answers = []
    r = httpx.post(f"{gw.url}/v1/events", headers=AUTH, json={"events": [
        {"event": "Purchase", "event_id": "api-1", **free_form("api")},
        {"event": f"signup {EMAILS['name']}", "event_id": "api-2"}]})
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    assert r.json()["rejected"][0]["errors"][0]["field"] == "event"
    answers.append(r.text)

    tag = free_form("tag")
    r = httpx.post(f"{gw.url}/v1/collect", content=orjson.dumps({
        "k": SITE_KEY, "event": "AddToCart", "event_id": "tag-1", **tag}),
        headers={"Content-Type": "text/plain", "Origin": ORIGIN,
                 "User-Agent": f"Mozilla/5.0 (X11; {EMAILS['tag']})"})
    assert r.status_code == 202, r.text
    answers.append(r.text)

    item = {"event": "ViewContent", "event_id": "dropin-1", "event_time": int(time.time()),
            **free_form("dropin")}
    item["user"] = {**item["user"], "email": EMAILS["dropin"], "phone": PHONES["dropin"]}
    r = httpx.post(f"{gw.url}/open_api/v1.3/event/track/", headers={"Access-Token": SOURCE_KEY},
                   json={"event_source": "web", "event_source_id": PIXEL, "data": [item]})
    assert r.json()["code"] == 0, r.text
    answers.append(r.text)

    body = orjson.dumps(shopify_order())
    signature = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body,
                                          hashlib.sha256).digest()).decode()
    r = httpx.post(f"{gw.url}/v1/webhooks/shopify/shop", content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Webhook-Id": "wh-pii"})
    assert r.status_code == 200, r.text
    answers.append(r.text)

    lines = tmp_path / "import.jsonl"
    lines.write_text(orjson.dumps({"event": "Purchase", "event_id": "imp-1",
                                   **free_form("import")}).decode() + "\n")
    cfg = tmp_path / "import.toml"
    cfg.write_text(f'[storage]\nurl = "sqlite:///{db}"\n[[destinations]]\nname = "tiktok"\n'
                   f'pixel_code = "{PIXEL}"\naccess_token = "{ACCESS_TOKEN}"\n'
                   f'default_phone_region = "DE"\n')
    done = subprocess.run([sys.executable, "-m", "pixelrelay.cli", "import", str(lines),
                           "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    answers.append(done.stdout + done.stderr)
    return "\n".join(answers)
