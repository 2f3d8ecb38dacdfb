"""TikTok data[] items, request bodies and the destination's route/build_request (golden)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from pixelrelay.config import Secret
from pixelrelay.destinations import REGISTRY, build_destination
from pixelrelay.destinations.base import HttpResponse, OutcomeKind
from pixelrelay.destinations.tiktok import TikTokDestination
from pixelrelay.destinations.tiktok.payload import build_body, build_item, encode_item, track_url
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.errors import ConfigError
from pixelrelay.model import Consent, ConsentState, DeliveryState, Event, Page, Source, User
from pixelrelay.pipeline.parse import parse_event
from pixelrelay.routing import route as route_of

GOLDEN = Path(__file__).parent / "golden"
NOW = 1776943400.0
H = "b" * 64


def dest(**kw: Any) -> TikTokDestination:
    settings = tiktok_destination(name="tiktok", pixel_code="C9ABC1234567890",
                                   access_token=Secret("tok-123"), **kw)
    d = build_destination(settings)
    assert isinstance(d, TikTokDestination)
    return d


def test_golden_spec_example_request() -> None:
    raw = json.loads((GOLDEN / "spec_example_event.json").read_text())
    event = parse_event(raw, now=NOW).event
    assert event is not None
    d = dest(test_event_code="TEST123")
    route = route_of(d, event)
    assert (route.destination, route.dest_event, route.state, route.batch_key) == (
        "tiktok", "CompletePayment", DeliveryState.PENDING, "web|test=TEST123")
    assert route.payload is not None
    req = d.build_request(route.batch_key, [route.payload])
    expected = json.loads((GOLDEN / "spec_example_request.json").read_text())
    assert req.body == orjson.dumps(expected)  # exact bytes, key order included
    assert req.url == "https://business-api.tiktok.com/open_api/v1.3/event/track/"
    assert req.headers == {"Access-Token": "tok-123", "Content-Type": "application/json"}


def test_minimal_item_omits_empty_parts() -> None:
    item = build_item(Event(name="Lead", event_id="e1", event_time=5), "SubmitForm")
    assert item == {"event": "SubmitForm", "event_time": 5, "event_id": "e1",
                    "limited_data_use": False}


def test_item_fields() -> None:
    e = Event(name="Search", event_id="e2", event_time=7,
              user=User(phone=(H,), ip="::1",
                        click_ids=(("ttp", "2.x"),)), page=Page(referrer="https://r"),
              properties={"query": "q", "search_string": "q", "custom": [1]},
              consent=Consent(ad_personalization=ConsentState.GRANTED))
    assert orjson.loads(encode_item(build_item(e, "Search"))) == {
        "event": "Search", "event_time": 7, "event_id": "e2",
        "user": {"phone": [H], "ttp": "2.x", "ip": "::1"}, "page": {"referrer": "https://r"},
        "properties": {"query": "q", "search_string": "q", "custom": [1]},
        "limited_data_use": False}


def test_body_is_valid_json_with_and_without_test_code() -> None:
    items = [encode_item({"event": "A", "n": i}) for i in range(3)]
    body = orjson.loads(build_body(event_source_id='P"1', event_source="app", items=items,
                                   test_event_code=None))
    assert body == {"event_source": "app", "event_source_id": 'P"1', "partner_name": "pixelrelay",
                    "data": [{"event": "A", "n": 0}, {"event": "A", "n": 1},
                             {"event": "A", "n": 2}]}
    body = orjson.loads(build_body(event_source_id="P", event_source="web", items=[],
                                   test_event_code="T1"))
    assert list(body) == ["event_source", "event_source_id", "partner_name", "test_event_code",
                          "data"]


@pytest.mark.parametrize("api_url", ["https://business-api.tiktok.com",
                                     "https://business-api.tiktok.com/"])
def test_track_url_has_the_trailing_slash(api_url: str) -> None:
    assert track_url(api_url) == "https://business-api.tiktok.com/open_api/v1.3/event/track/"


def test_route_filtered_before_suppressed() -> None:
    denied = Event(name="PageView", event_id="e", event_time=1, source=Source.OFFLINE,
                   consent=Consent(marketing=ConsentState.DENIED))
    r = route_of(dest(exclude_events=("Pageview",)), denied)
    assert (r.state, r.reason, r.payload, r.dest_event, r.batch_key) == (
        DeliveryState.FILTERED, "filter: event in exclude_events", None, "Pageview", "offline")
    r = route_of(dest(offline_event_set_id="7301"), denied)
    assert (r.state, r.reason, r.payload) == (
        DeliveryState.SUPPRESSED, "consent: marketing denied", None)


def test_route_uses_the_event_map_and_source() -> None:
    e = Event(name="Purchase", event_id="e", event_time=1, source=Source.OFFLINE)
    d = dest(event_map={"Purchase": "Purchase"}, batch_size=50, offline_event_set_id="7301")
    r = route_of(d, e)
    assert r.dest_event == "Purchase" and r.batch_key == "offline"
    assert r.payload is not None and orjson.loads(r.payload)["event"] == "Purchase"
    body = orjson.loads(d.build_request(r.batch_key, [r.payload]).body)
    assert (body["event_source"], body["event_source_id"]) == ("offline", "7301")


@pytest.mark.parametrize(("source", "key", "ident"), [
    (Source.OFFLINE, "offline_event_set_id", "7301"), (Source.CRM, "crm_event_set_id", "7302"),
    (Source.APP, "app_id", "7303"), (Source.WEB, "pixel_code", "C9ABC1234567890")])
def test_each_source_goes_to_its_own_tiktok_id_or_is_filtered(
        source: Source, key: str, ident: str) -> None:
    e = Event(name="ViewContent", event_id="e", event_time=1, source=source)
    if source is not Source.WEB:
        r = route_of(dest(), e)
        assert r.state is DeliveryState.FILTERED and r.payload is None
        assert r.reason == f"filter: no {key} configured for source {source.value} events"
    d = dest(**({} if source is Source.WEB else {key: ident}))
    r = route_of(d, e)
    assert r.state is DeliveryState.PENDING and r.payload is not None
    body = orjson.loads(d.build_request(r.batch_key, [r.payload]).body)
    assert (body["event_source"], body["event_source_id"]) == (source.value, ident)


def test_a_senders_test_event_code_gets_requests_of_its_own() -> None:
    d = dest()
    prod = route_of(d, Event(name="ViewContent", event_id="a", event_time=1))
    test = route_of(d, Event(name="ViewContent", event_id="b", event_time=1,
                         test_event_code="TEST9"))
    assert prod.batch_key != test.batch_key
    assert test.payload is not None and prod.payload is not None
    assert orjson.loads(d.build_request(test.batch_key, [test.payload]).body)[
        "test_event_code"] == "TEST9"
    assert "test_event_code" not in orjson.loads(d.build_request(prod.batch_key,
                                                                 [prod.payload]).body)
    # A destination's own code still sends everything to Test Events, in one kind of request.
    d = dest(test_event_code="DEST1")
    keys = {route_of(d, Event(name="ViewContent", event_id=i, event_time=1,
                              test_event_code=c)).batch_key
            for i, c in (("a", None), ("b", "TEST9"))}
    assert keys == {"web|test=DEST1"}


def test_new_user_keys_lead_app_ad_and_limited_data_use_in_tiktoks_shape() -> None:
    raw = {"event": "Lead", "source": "crm", "user": {
        "first_name": " Anne ", "last_name": "", "zip_code": "SW1A 1AA", "city": "New York",
        "state": "NY", "country": "US"},
        "lead": {"lead_id": 7403, "lead_event_source": "HubSpot"}, "limited_data_use": True,
        "app": {"app_id": "343200656", "app_version": "1.2"},
        "ad": {"callback": "cb", "is_retargeting": False},
        "device": {"platform": "iOS", "mobile": True}}
    event = parse_event(raw, now=NOW).event
    assert event is not None
    item = build_item(event, "Lead")
    assert item["user"] == {"first_name": _sha("anne"), "zip_code": _sha("sw1a1aa"),
                            "city": "newyork", "state": "ny", "country": "us"}
    assert item["lead"] == {"lead_id": "7403", "lead_event_source": "HubSpot"}
    assert item["app"] == {"app_id": "343200656", "app_version": "1.2"}
    assert item["ad"] == {"callback": "cb", "is_retargeting": False}
    assert item["device"] == {"platform": "iOS", "mobile": True}
    assert item["limited_data_use"] is True


def _sha(s: str) -> str:
    import hashlib

    return hashlib.sha256(s.encode()).hexdigest()


def test_destination_attributes_and_classify() -> None:
    d = dest(batch_size=50)
    assert (d.name, d.batch_size) == ("tiktok", 50)
    out = d.classify(HttpResponse(200, b'{"code":0,"message":"OK","request_id":"r"}'))
    assert out.kind is OutcomeKind.DELIVERED


def test_registry_and_unknown_type() -> None:
    assert REGISTRY["tiktok"].build is TikTokDestination
    bad = dataclasses.replace(tiktok_destination(name="x", pixel_code="P",
                                                 access_token=Secret("t")), type="nope")
    with pytest.raises(ConfigError, match="unknown destination type 'nope'"):
        build_destination(bad)


EXTENDED = {
    "event": "Order Completed", "source": "crm", "event_id": "x1", "test_event_code": "T1",
    "user": {"email": ["a@b.co", ""], "first_name": "Ann", "last_name": " Lee ",
             "zip_code": "10115", "city": "Berlin", "state": "BE", "country": "DE",
             "idfa": "6d92078a-8246-4ba4-ae5b-76104861e7dc", "att_status": "authorized",
             "gaid": "g-1", "idfv": "v-1", "phone": "+1 555 123 4567"},
    "lead": {"lead_id": "7403", "lead_event_source": "HubSpot"},
    "app": {"app_id": "343200656", "app_name": "Shop", "app_version": 3},
    "ad": {"callback": "cb", "campaign_id": 17, "is_retargeting": True, "attributed": False},
    "device": {"platform": "iOS", "mobile": True, "browser_version_list": ["a", "b"]},
    "limited_data_use": False, "page": {"url": "https://s.example/?ttclid=E.C.P.1"},
    "properties": {"contents": [{"content_id": 7, "content_name": 12, "brand": "B"}],
                   "content_ids": ["", 5], "num_items": "2", "description": 3.5},
}


@pytest.mark.parametrize("base", ["spec", "extended"])
def test_whatever_the_parser_accepts_passes_the_emulators_contract(base: str) -> None:
    """Seeded mutations of the SPEC example (and of one with every Events 2.0 field): an
    accepted event never yields a malformed item.

    The emulator's checker is written independently of the pipeline, so a shared
    misunderstanding of TikTok's contract cannot pass both.
    """
    from pixelrelay.emulator.contract import validate_request

    rnd = random.Random(7)
    base_event = (json.loads((GOLDEN / "spec_example_event.json").read_text())
                  if base == "spec" else EXTENDED)
    junk: list[Any] = [None, True, 0, 1.5, "", " ", "x", "eur", "1776943380", 1776943380000,
                       [], [1], [None], {}, {"a": 1}, "a@b.co", "product_group", "DENIED", "::1"]

    def mutate(o: Any) -> Any:
        if isinstance(o, dict):
            out = {}
            for k, v in o.items():
                r = rnd.random()
                if r >= 0.06:
                    out[k] = mutate(v)
                elif r < 0.04:
                    out[k] = rnd.choice(junk)
            return out
        return [mutate(x) for x in o] if isinstance(o, list) else o

    accepted = 0
    for _ in range(1500):
        event = parse_event(mutate(base_event), now=NOW).event
        if event is None:
            continue
        accepted += 1
        item = encode_item(build_item(event, "CompletePayment"))
        body = build_body(event_source_id="P", event_source=event.source.value, items=[item],
                          test_event_code=event.test_event_code)
        assert validate_request(orjson.loads(body)) == []
    assert accepted > 150
