"""The Meta emulator over real HTTP on loopback, mounted under /_meta as the gateway will mount it:
the events edge in each encoding, control endpoints, faults, and Meta's own Python SDK as client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pixelrelay.emulator.meta import MetaEmulator, create_meta_emulator_app
from tests.support import ServerThread, wait_for

PIXEL = "123456789012345"
TOKEN = "EAAmetatoken"
EM = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
FBP = "fb.1.1596403881668.1116446470"


@pytest.fixture()
def meta_emulator() -> Iterator[ServerThread]:
    """A MetaEmulator mounted at /_meta of an outer app: api_url is {server.url}/_meta."""
    emu = MetaEmulator(access_tokens=[TOKEN], pixel_ids=[PIXEL])
    outer = Starlette(routes=[Mount("/_meta", app=create_meta_emulator_app(emu))])
    outer.state.meta_emulator = emu
    with ServerThread(outer) as server:
        yield server


@pytest.fixture()
def client(meta_emulator: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{meta_emulator.url}/_meta", timeout=10) as c:
        yield c


def state(server: ServerThread) -> MetaEmulator:
    emu: MetaEmulator = server.server.config.app.state.meta_emulator  # type: ignore[attr-defined]
    return emu


def event(name: str = "Purchase", event_id: str = "order_1", **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_name": name, "event_time": int(time.time()) - 30, "event_id": event_id,
        "action_source": "website", "event_source_url": "https://shop.example/thanks",
        "user_data": {"em": [EM], "fbp": FBP, "client_user_agent": "Mozilla/5.0",
                      "client_ip_address": "2001:db8::7"},
        "custom_data": {"value": 12.5, "currency": "EUR"},
    }
    ev.update(extra)
    return ev


EDGE = f"/v25.0/{PIXEL}/events"


def test_json_with_query_token_is_recorded_and_listed(client: httpx.Client) -> None:
    r = client.post(EDGE, params={"access_token": TOKEN},
                    json={"data": [event(), event("AddToCart", "c1")], "test_event_code": "T1"})
    assert r.status_code == 200
    answer = r.json()
    assert answer["events_received"] == 2 and answer["messages"] == []
    assert r.headers["x-fb-trace-id"] == answer["fbtrace_id"]
    assert r.headers["content-type"].startswith("application/json")
    listed = client.get("/events", params={"test_event_code": "T1"}).json()
    assert [e["event_name"] for e in listed] == ["Purchase", "AddToCart"]
    assert client.get("/events", params={"event_id": "c1"}).json()[0]["event_name"] == "AddToCart"
    assert client.get("/events", params={"pixel_id": "1"}).json() == []
    assert client.get("/events", params={"event_name": "Lead"}).json() == []
    [req] = client.get("/requests").json()
    assert (req["http_status"], req["encoding"], req["token_in"]) == (200, "json", "query")
    assert req["fbtrace_id"] == answer["fbtrace_id"] and req["events_received"] == 2
    stats = client.get("/stats").json()
    assert (stats["requests"], stats["events"], stats["by_http_status"]) == (1, 2, {"200": 1})


def test_sdk_style_form_with_bearer_token(client: httpx.Client) -> None:
    data = orjson.dumps([orjson.dumps(event()).decode()]).decode()
    r = client.post(EDGE, data={"data": data, "partner_agent": "pixelrelay-test"},
                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    [req] = client.get("/requests").json()
    assert (req["encoding"], req["token_in"]) == ("form", "bearer")
    assert req["partner_agent"] == "pixelrelay-test"


def test_refusals_are_graph_error_objects_over_http(client: httpx.Client) -> None:
    r = client.post(EDGE, json={"data": [event()]})
    assert r.status_code == 400 and r.json()["error"]["code"] == 104
    r = client.post(EDGE, params={"access_token": "nope"}, json={"data": [event()]})
    assert r.status_code == 400 and r.json()["error"]["code"] == 190
    assert "invalid_token" in r.headers["www-authenticate"]
    old = event(event_time=int(time.time()) - 8 * 86400)
    r = client.post(EDGE, params={"access_token": TOKEN}, json={"data": [event("Lead", "l"), old]})
    err = r.json()["error"]
    assert r.status_code == 400
    assert (err["code"], err["error_subcode"], err["is_transient"]) == (100, 2804003, False)
    assert err["error_user_title"] == "Event Timestamp Too Old"
    # The whole request was refused: the valid Lead was not recorded either.
    assert client.get("/events").json() == []
    # A path without the version segment is not the events edge.
    assert client.post(f"/{PIXEL}/events", params={"access_token": TOKEN}).status_code == 404


def test_faults_through_the_control_endpoint(client: httpx.Client) -> None:
    r = client.post("/faults", json={"transient_rate": 1.0})
    assert r.status_code == 200 and r.json()["transient_rate"] == 1.0
    r = client.post(EDGE, params={"access_token": TOKEN}, json={"data": [event()]})
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["is_transient"]) == (500, 2, True)
    bad = client.post("/faults", json={"rate_limit_code": 5})
    assert bad.status_code == 400 and bad.json()["error"].startswith("rate_limit_code:")
    assert client.post("/faults", content=b"[1]").status_code == 400
    client.post("/reset")
    assert client.get("/faults").json()["transient_rate"] == 0.0
    assert client.get("/requests").json() == []
    client.post("/faults", json={"revoked_tokens": [TOKEN]})
    r = client.post(EDGE, params={"access_token": TOKEN}, json={"data": [event()]})
    assert (r.json()["error"]["code"], r.json()["error"]["error_subcode"]) == (190, 460)
    client.post("/faults", json={"http_5xx_rate": 1.0, "revoked_tokens": []})
    r = client.post(EDGE, params={"access_token": TOKEN}, json={"data": [event()]})
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")


def test_hang_holds_requests_until_lifted(
    meta_emulator: ServerThread, client: httpx.Client
) -> None:
    client.post("/faults", json={"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        client.post(EDGE, params={"access_token": TOKEN}, json={"data": [event()]}, timeout=0.3)
    assert state(meta_emulator).hanging == 1
    client.post("/faults", json={"hang": False})
    wait_for(lambda: client.get("/stats").json()["by_http_status"] == {"503": 1})
    assert client.get("/stats").json()["hanging"] == 0 and state(meta_emulator).events == []


def test_duplicate_over_http_counts_but_is_recorded_once(client: httpx.Client) -> None:
    for _ in range(2):
        r = client.post(EDGE, params={"access_token": TOKEN}, json={"data": [event()]})
        assert r.json()["events_received"] == 1
    assert len(client.get("/events").json()) == 1
    assert [r["duplicates"] for r in client.get("/requests").json()] == [0, 1]


# --- Meta's own Python SDK as a client -----------------------------------------------------


@pytest.fixture()
def sdk(meta_emulator: ServerThread, monkeypatch: pytest.MonkeyPatch) -> Any:
    """facebook-business pointed at the emulator; its global state is restored afterwards."""
    pytest.importorskip("facebook_business")
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    monkeypatch.setattr(FacebookSession, "GRAPH", f"{meta_emulator.url}/_meta")
    monkeypatch.setattr(FacebookAdsApi, "_default_api", None)
    return FacebookAdsApi


def sdk_event(event_time: int | None = None) -> Any:
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.content import Content
    from facebook_business.adobjects.serverside.custom_data import CustomData
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.user_data import UserData

    user = UserData(
        emails=["John_Smith@gmail.com"], phones=["+1 (650) 555-1212"], country_codes=["US"],
        cities=["Menlo Park"], zip_codes=["94035-1234"], external_ids=["cust_1"],
        client_ip_address="203.0.113.4", client_user_agent="Mozilla/5.0",
        fbc="fb.1.1554763741205.IwAR2F4-dbP0l7Mn1", fbp=FBP,
    )
    custom = CustomData(
        currency="usd", value=12.5, order_id="o1", content_type="product", num_items=2,
        contents=[Content(product_id="SKU1", quantity=2, item_price=6.25)],
    )
    return Event(
        event_name="Purchase", event_time=event_time or int(time.time()), event_id="o1",
        user_data=user, custom_data=custom, event_source_url="https://shop.example/thanks",
        action_source=ActionSource.WEBSITE,
    )


def test_metas_sdk_sends_and_parses_the_success_answer(
    sdk: Any, meta_emulator: ServerThread
) -> None:
    from facebook_business.adobjects.serverside.event_request import EventRequest

    sdk.init(access_token=TOKEN, api_version="v25.0")
    response = EventRequest(events=[sdk_event()], pixel_id=PIXEL, test_event_code="TEST9").execute()
    assert response.events_received == 1 and response.messages == []
    log = state(meta_emulator).requests[-1]
    assert response.fbtrace_id == log.fbtrace_id
    # The SDK's form: a JSON array of JSON-encoded events, the token in the query string.
    assert (log.encoding, log.token_in, log.test_event_code) == ("form", "query", "TEST9")
    [ev] = state(meta_emulator).find_events(event_id="o1", test_event_code="TEST9")
    # Meta's published vectors (meta-capi.md §8), hashed by Meta's SDK, judged valid.
    assert ev["user_data"]["em"] == [EM]
    assert ev["user_data"]["ph"] == [
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    ]
    assert ev["custom_data"]["contents"] == [{"id": "SKU1", "quantity": 2, "item_price": 6.25}]


def test_metas_sdk_raises_the_emulators_errors(sdk: Any, client: httpx.Client) -> None:
    from facebook_business.adobjects.serverside.event_request import EventRequest
    from facebook_business.exceptions import FacebookRequestError

    sdk.init(access_token="not-the-token", api_version="v25.0")
    with pytest.raises(FacebookRequestError) as bad_token:
        EventRequest(events=[sdk_event()], pixel_id=PIXEL).execute()
    assert (bad_token.value.api_error_code(), bad_token.value.http_status()) == (190, 400)
    assert bad_token.value.api_error_type() == "OAuthException"

    sdk.init(access_token=TOKEN, api_version="v25.0")
    with pytest.raises(FacebookRequestError) as too_old:
        EventRequest(events=[sdk_event(int(time.time()) - 8 * 86400)], pixel_id=PIXEL).execute()
    assert (too_old.value.api_error_code(), too_old.value.api_error_subcode()) == (100, 2804003)

    client.post("/faults", json={"rate_limit_rate": 1.0, "rate_limit_code": 613})
    with pytest.raises(FacebookRequestError) as throttled:
        EventRequest(events=[sdk_event()], pixel_id=PIXEL).execute()
    assert throttled.value.api_error_code() == 613
    assert throttled.value.api_transient_error() is True
