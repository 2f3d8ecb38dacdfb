"""Bodies that Segment's and RudderStack's TikTok destinations really send, posted to the
drop-in endpoint over HTTP, and what reaches the emulator (tests/fixtures/peers/README.md)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.emulator import Emulator, create_emulator_app
from tests.conftest import ACCESS_TOKEN, ADMIN_TOKEN, PIXEL, SOURCE_KEY, make_settings
from tests.support import ServerThread, sqlite_exec, wait_for

PEERS = Path(__file__).parent.parent / "fixtures" / "peers"
CRM_SET = "7311111111111111111"
OFFLINE_SET = "7322222222222222222"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture
def emulator() -> Iterator[ServerThread]:
    emu = Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL, CRM_SET, OFFLINE_SET])
    with ServerThread(create_emulator_app(emu)) as server:
        yield server


@pytest.fixture
def gateway(tmp_path: Path, emulator: ServerThread) -> Iterator[ServerThread]:
    settings = make_settings(tmp_path / "peers.db", emulator.url, crm_event_set_id=CRM_SET,
                             offline_event_set_id=OFFLINE_SET)
    with ServerThread(create_app(settings)) as server:
        yield server


def emu(server: ServerThread) -> Emulator:
    state: Emulator = server.server.config.app.state.emulator  # type: ignore[attr-defined]
    return state


def peer_body(name: str, source_id: str = PIXEL) -> dict[str, Any]:
    """The fixture with only the placeholders replaced: our id, a recent event_time."""
    body: dict[str, Any] = orjson.loads((PEERS / name).read_bytes())
    body["event_source_id"] = source_id
    for item in body["data"]:
        item["event_time"] = int(time.time()) - 60
    return body


def track(gw: ServerThread, body: Any) -> dict[str, Any]:
    r = httpx.post(f"{gw.url}/open_api/v1.3/event/track/", content=orjson.dumps(body),
                   headers={"Access-Token": SOURCE_KEY, "Content-Type": "application/json"})
    assert r.status_code == 200
    answer: dict[str, Any] = r.json()
    return answer


def arrived(server: ServerThread, n: int) -> list[dict[str, Any]]:
    wait_for(lambda: len(emu(server).events) >= n)
    time.sleep(0.1)
    events = emu(server).events
    assert len(events) == n
    return events


def test_segment_web_body_with_empty_keys_and_a_test_event_code(
        gateway: ServerThread, emulator: ServerThread, tmp_path: Path) -> None:
    body = peer_body("segment/web_test_event_code.json")
    answer = track(gateway, body)
    assert answer["code"] == 0, answer
    (sent,) = arrived(emulator, 1)
    given = body["data"][0]
    assert sent["event"] == "AddToCart" and sent["event_id"] == "corey123"
    # Empty strings mean "absent": none of Segment's blank keys is sent on.
    assert sent["user"] == {k: given["user"][k] for k in (
        "external_id", "phone", "email", "ttclid", "ip", "user_agent")}
    assert sent["properties"]["contents"] == given["properties"]["contents"]
    assert sent["properties"]["search_string"] == "shoes"
    assert sent["page"] == given["page"] and sent["limited_data_use"] is False
    # The request's test code puts it in Test Events, in a request of its own.
    assert sent["_test_event_code"] == "TEST04030"
    assert [r.test_event_code for r in emu(emulator).requests] == ["TEST04030"]
    # Stored as having come through the drop-in endpoint (the diagnostics' channel).
    assert sqlite_exec(tmp_path / "peers.db", "SELECT channel FROM events") == [("tiktok_api",)]


def test_segment_crm_body_goes_to_the_crm_event_set_with_its_lead(
        gateway: ServerThread, emulator: ServerThread) -> None:
    answer = track(gateway, peer_body("segment/crm_lead.json", CRM_SET))
    assert answer["code"] == 0, answer
    (sent,) = arrived(emulator, 1)
    assert (sent["_event_source"], sent["_pixel_code"]) == ("crm", CRM_SET)
    assert sent["lead"] == {"lead_id": "test_lead_id",
                            "lead_event_source": "test_lead_event_source"}
    assert "contents" not in sent["properties"]  # Segment's [] is "no contents"


def test_a_crm_body_naming_the_pixel_is_refused_with_the_reason(gateway: ServerThread) -> None:
    answer = track(gateway, peer_body("segment/crm_lead.json", PIXEL))
    assert answer["code"] == 40002
    assert "pixel_code" in answer["message"] and "event_source web" in answer["message"]


@pytest.mark.parametrize("name", ["segment/web_vehicle.json", "segment/web_travel.json"])
def test_segment_vertical_properties_pass_through(gateway: ServerThread, emulator: ServerThread,
                                                  name: str) -> None:
    body = peer_body(name)
    assert track(gateway, body)["code"] == 0
    (sent,) = arrived(emulator, 1)
    given = {k: v for k, v in body["data"][0]["properties"].items() if k != "contents"}
    assert sent["properties"] == given


def test_rudderstack_hashed_traits_and_unhashed_address(gateway: ServerThread,
                                                        emulator: ServerThread) -> None:
    body = peer_body("rudderstack/v2_contents_hashed_traits.json")
    assert track(gateway, body)["code"] == 0
    (sent,) = arrived(emulator, 1)
    user = body["data"][0]["user"]
    for key in ("first_name", "last_name", "zip_code"):
        assert sent["user"][key] == user[key]  # already hashed: passed as given
    assert (sent["user"]["city"], sent["user"]["state"], sent["user"]["country"]) == (
        "dummycity", "dummystate", "dummycountry")
    assert sent["user"]["email"] == [user["email"]]  # TikTok's list form
    assert sent["user"]["external_id"] == user["external_id"]
    assert sent["properties"]["contents_ids"] == ["123", "345"]  # a custom key, kept
    assert sent["properties"]["order_id"] == "1234"


def test_rudderstack_raw_ids_are_hashed_bad_phones_dropped_names_kept_as_sent(
        gateway: ServerThread, emulator: ServerThread) -> None:
    body = peer_body("rudderstack/v2_two_events_raw_ids.json")
    answer = track(gateway, body)
    assert answer["code"] == 0
    warnings = answer["data"]["warnings"]
    assert "data.0.user.phone.0: not a valid phone number (give it as +<country code>..., or " \
           "set default_phone_region); dropped" in warnings
    assert not any("+12345432" in w for w in warnings)
    events = arrived(emulator, 2)
    assert {e["event"] for e in events} == {"download", "AddToWishlist"}  # as sent, not renamed
    for sent in events:
        assert "phone" not in sent["user"]
        assert sent["user"]["external_id"] == [
            sha("f0e388f53921a51f0bb0fc8a2944109ec188b5"),
            sha("1f0bb0fc8a2944109ec188b59172935d8f23020b1614cc44bc")]


def test_unknown_keys_are_dropped_and_named_never_the_event(gateway: ServerThread,
                                                            emulator: ServerThread) -> None:
    body = peer_body("segment/web_travel.json")
    body["sdk_version"] = "9.1"
    body["data"][0]["user"]["shoe_size"] = "44"
    body["data"][0]["custom_block"] = {"x": 1}
    answer = track(gateway, body)
    assert answer["code"] == 0 and answer["message"] == "OK"
    assert answer["data"]["warnings"] == [
        "sdk_version: unknown field; dropped", "data.0.custom_block: unknown field; dropped",
        "data.0.user.shoe_size: unknown field; dropped"]
    (sent,) = arrived(emulator, 1)
    assert "shoe_size" not in sent["user"] and "custom_block" not in sent
    # The diagnostics count dropped keys by name, on the JSON and on the page.
    admin = {"X-Admin-Token": ADMIN_TOKEN}
    notes = httpx.get(f"{gateway.url}/v1/diagnostics", headers=admin).json()["ingest_notices"]
    assert {d["field"]: d["count"] for d in notes["dropped_fields"]} == {
        "custom_block": 1, "user.shoe_size": 1}
    page = httpx.get(f"{gateway.url}/", headers=admin).text
    assert "<code>user.shoe_size</code>" in page


def test_the_same_fields_on_v1_events_with_segment_names(gateway: ServerThread,
                                                         emulator: ServerThread) -> None:
    r = httpx.post(f"{gateway.url}/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                   json={"events": [
                       {"event": "order completed", "properties": {
                           "order_id": "88", "value": 9.5, "currency": "EUR", "contents": []},
                        "user": {"email": "ann@example.com", "first_name": " Ann ",
                                 "last_name": "", "city": "São Paulo", "country": "BR",
                                 "zip_code": "01310-100", "shoe_size": 44},
                        "page": {"url": "https://shop.example/p?ttclid=E.C.P.x9"},
                        "limited_data_use": True},
                       {"event": "Product Added", "event_id": "pa1", "test_event_code": "T77"},
                       {"event": "Lead", "source": "crm", "event_id": "l1",
                        "lead": {"lead_id": 9001, "lead_event_source": "HubSpot"}},
                       {"event": "Purchase", "source": "offline", "event_id": "o1"}]})
    assert r.status_code == 202
    answer = r.json()
    assert answer["accepted"] == 4 and answer["rejected"] == []
    assert answer["event_ids"][0] == "ord_88_complete_payment"
    assert answer["warnings"] == ["events[0] user.shoe_size: unknown field; dropped"]
    events = {e["event_id"]: e for e in arrived(emulator, 4)}
    purchase = events["ord_88_complete_payment"]
    assert purchase["event"] == "CompletePayment"
    assert purchase["user"]["first_name"] == sha("ann")
    assert purchase["user"]["zip_code"] == sha("01310100")
    assert (purchase["user"]["city"], purchase["user"]["country"]) == ("sopaulo", "br")
    assert "last_name" not in purchase["user"]
    assert purchase["user"]["ttclid"] == "E.C.P.x9"  # from page.url
    assert purchase["limited_data_use"] is True and purchase["_test_event_code"] is None
    assert events["pa1"]["event"] == "AddToCart" and events["pa1"]["_test_event_code"] == "T77"
    assert (events["l1"]["_pixel_code"], events["l1"]["lead"]) == (
        CRM_SET, {"lead_id": "9001", "lead_event_source": "HubSpot"})
    assert (events["o1"]["_event_source"], events["o1"]["_pixel_code"]) == (
        "offline", OFFLINE_SET)
    # Test events never share a request with production ones; sources never share either.
    for req in emu(emulator).requests:
        assert req.n_events == 1 or req.test_event_code is None


def test_a_source_without_its_id_is_filtered_with_the_reason(tmp_path: Path,
                                                             emulator: ServerThread) -> None:
    with ServerThread(create_app(make_settings(tmp_path / "f.db", emulator.url))) as gw:
        r = httpx.post(f"{gw.url}/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                       json={"event": "Purchase", "source": "offline", "event_id": "off1"})
        assert r.json()["accepted"] == 1
        log = httpx.get(f"{gw.url}/v1/deliveries", params={"event_id": "off1"},
                        headers={"X-Admin-Token": ADMIN_TOKEN}).json()
        (row,) = log["deliveries"]
        assert row["state"] == "filtered"
        assert row["reason"] == ("filter: no offline_event_set_id configured for source "
                                 "offline events")
