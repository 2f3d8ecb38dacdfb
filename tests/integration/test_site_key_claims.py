"""The public site key speaks only for its own visitor (issue 24, point 1), over real HTTP.

An attacker's browser session, made with the site key every page carries, claims a victim's
email. It must neither lend the victim's server purchase its consent, ttclid, IP and user
agent, nor take away the consent the victim gave in their own session.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import ConsentSettings, Secret, ServerSettings, SourceSettings
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, emu_state, make_settings
from tests.support import ServerThread, wait_for

SITE_KEY = "site-key-claims"
ORIGIN = "http://shop.test"
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}"}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
VICTIM = "victim@example.org"
ATTACKER_UA = "Mozilla/5.0 (attacker)"
VICTIM_UA = "Mozilla/5.0 (victim)"


@pytest.fixture
def gateway(tmp_path: Path, emulator: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(tmp_path / "gw.db", emulator.url,
                         consent=ConsentSettings(require_in_regions=("EEA",)))
    site = SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                          allowed_origins=(ORIGIN,))
    settings = dataclasses.replace(base, sources=(*base.sources, site),
                                   server=ServerSettings(admin_token=Secret(ADMIN_TOKEN)))
    with ServerThread(create_app(settings)) as server:
        yield server


def collect(gw: ServerThread, body: dict[str, Any], ua: str,
            sid: str | None = None) -> dict[str, Any]:
    cookies = {"prx_sid": sid} if sid else None
    with httpx.Client(cookies=cookies) as client:
        r = client.post(f"{gw.url}/v1/collect", content=orjson.dumps({"k": SITE_KEY, **body}),
                        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": ORIGIN,
                                 "User-Agent": ua})
    assert r.status_code == 202, r.text
    answer: dict[str, Any] = r.json()
    return answer


def browse(gw: ServerThread, ttclid: str, ua: str, marketing: str) -> str:
    """A visitor lands from an ad and answers the consent banner; returns their session."""
    sid: str = collect(gw, {"event": "ViewContent", "consent": {"marketing": marketing},
                            "page": {"url": f"https://shop.test/p?ttclid={ttclid}"}},
                       ua)["session_id"]
    return sid


def claim(gw: ServerThread, email: str, marketing: str) -> None:
    """Everything a stranger's browser can say about someone else's email with the site key:
    identify, a tag event carrying it, and /v1/events with the site key and a session."""
    sid = browse(gw, "E.C.P.ATTACKER", ATTACKER_UA, marketing)
    collect(gw, {"identify": {"email": email}, "consent": {"marketing": marketing}},
            ATTACKER_UA, sid)
    collect(gw, {"event": "AddToCart", "user": {"email": email},
                 "consent": {"marketing": marketing}}, ATTACKER_UA, sid)
    r = httpx.post(f"{gw.url}/v1/events",
                   headers={"X-Pixelrelay-Key": SITE_KEY, "Origin": ORIGIN},
                   json={"event": "Lead", "session_id": sid, "user": {"email": email},
                         "consent": {"marketing": marketing}})
    assert r.status_code == 202, r.text


def purchase(gw: ServerThread, order: str, **extra: Any) -> str:
    """The victim's backend purchase: no consent of its own, from an EEA country."""
    body = {"event": "Purchase", "user": {"email": VICTIM, "country": "DE"},
            "properties": {"order_id": order, "value": 30, "currency": "EUR"}, **extra}
    r = httpx.post(f"{gw.url}/v1/events", headers=AUTH, json=body)
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    return f"ord_{order}_complete_payment"


def settled(gw: ServerThread, event_id: str) -> dict[str, Any]:
    """The event's trace once its delivery is no longer pending."""
    def done() -> bool:
        t = httpx.get(f"{gw.url}/v1/events/{event_id}/trace", headers=ADMIN)
        return t.status_code == 200 and t.json()["deliveries"][0]["state"] not in (
            "pending", "in_flight")
    wait_for(done)
    trace: dict[str, Any] = httpx.get(f"{gw.url}/v1/events/{event_id}/trace",
                                      headers=ADMIN).json()
    return trace


def sent(emulator: ServerThread, event_id: str) -> list[dict[str, Any]]:
    return [e for e in emu_state(emulator).events if e.get("event_id") == event_id]


def test_a_strangers_claim_lends_no_consent_or_attribution(
        gateway: ServerThread, emulator: ServerThread) -> None:
    alone = settled(gateway, purchase(gateway, "9001"))
    assert alone["deliveries"][0]["state"] == "suppressed"

    claim(gateway, VICTIM, "granted")
    attacked = settled(gateway, purchase(gateway, "9002"))
    # Exactly as without the attacker: nothing of theirs reached the victim's purchase.
    assert attacked["deliveries"][0]["state"] == "suppressed"
    assert attacked["event"]["enriched_from"] is None
    assert "ttclid" not in attacked["event"]["user"]
    assert attacked["event"]["consent"] == alone["event"]["consent"]
    assert attacked["deliveries"][0]["reason"] == alone["deliveries"][0]["reason"]
    time.sleep(0.3)
    assert not sent(emulator, "ord_9002_complete_payment")
    assert not any(e["user"].get("ttclid") == "E.C.P.ATTACKER" and e["event"] ==
                   "CompletePayment" for e in emu_state(emulator).events)


def test_a_strangers_denial_does_not_suppress_the_victims_own_consent(
        gateway: ServerThread, emulator: ServerThread) -> None:
    own = browse(gateway, "E.C.P.VICTIM", VICTIM_UA, "granted")
    # The shop's backend states the victim's session with their email (a server source: the
    # only word that ties an email to a session).
    linked = settled(gateway, purchase(gateway, "9101", session_id=own))
    assert linked["deliveries"][0]["state"] == "delivered"

    claim(gateway, VICTIM, "denied")
    with_session = purchase(gateway, "9102", session_id=own)
    by_email = purchase(gateway, "9103")
    for event_id in (with_session, by_email):
        trace = settled(gateway, event_id)
        assert trace["deliveries"][0]["state"] == "delivered", (event_id, trace)
        wait_for(lambda eid=event_id: bool(sent(emulator, eid)))  # type: ignore[misc]
        user = sent(emulator, event_id)[0]["user"]
        assert user["ttclid"] == "E.C.P.VICTIM" and user["user_agent"] == VICTIM_UA
    assert settled(gateway, by_email)["event"]["enriched_from"] == "identity"
