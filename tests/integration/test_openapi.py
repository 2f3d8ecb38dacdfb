"""/openapi.json against the real gateway over loopback: the document is valid OpenAPI 3.1,
every request sent and every answer received matches it (JSON Schema Draft 2020-12), and
its event schema refuses exactly what the parser refuses."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pixelrelay import __version__
from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from pixelrelay.diagnostics.endpoints import csrf_token
from pixelrelay.openapi import document
from pixelrelay.pipeline import extras, parse, user
from pixelrelay.sources import meta_map, tiktok_compat
from pixelrelay.store.base import DeliveryView
from pixelrelay.store.rows import RejectionRow
from tests.conftest import ACCESS_TOKEN, ADMIN_TOKEN, PIXEL, SOURCE_KEY, make_settings
from tests.support import ServerThread

BASE = "urn:pixelrelay:openapi"
JSON = "application/json"
LIMITED_KEY = "limited-source-key-0001"
SITE_KEY = "openapi-site-key-0001"
STRICT_KEY = "openapi-strict-key-0001"
LIMITED_SITE_KEY = "openapi-limited-site-0001"
SHOP_SECRET = "shpss_openapi_0001"
ORIGIN = "http://shop.test"
OFFLINE, CRM, APP = "7000001", "CRM0001", "com.shop.app"
SERVER = {"Authorization": f"Bearer {SOURCE_KEY}"}
META_EDGE = "/v25.0/1234567890/events"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
ORDER = Path(__file__).resolve().parent.parent / "fixtures" / "shopify" / "orders-create.json"
# Objects in answers that are not pixelrelay's own shape, so they stay open.
OPEN_ANSWERS = {
    "/components/schemas/TraceDelivery/properties/payload",  # TikTok's data[] item, as sent
    "/components/schemas/StoredEvent/properties/properties",  # custom keys pass through
    "/components/schemas/StoredEvent/properties/device",  # client hints, as given
    # Each hashing destination type's user object (by type, then its own keys).
    "/components/schemas/StoredEvent/properties/hashed_users",
    "/components/schemas/StoredEvent/properties/hashed_users/additionalProperties",
    "/paths/~1openapi.json/get/responses/200/content/application~1json/schema",
}
# Request objects that refuse unknown keys (everything else drops them with a warning).
CLOSED_REQUESTS = {"/components/schemas/CollectHit/properties/link"}
# Documented answers no request here can produce, and why.
NOT_EXERCISED = {
    ("/v1/webhooks/shopify/{source}", "post", "500"),  # a topic admitted without a mapping
}


def now() -> int:
    return int(time.time())


def pointer(*keys: str) -> str:
    return "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in keys)


class Contract:
    """Checks requests and answers against the document and records what was exercised."""

    def __init__(self, doc: dict[str, Any], url: str) -> None:
        self.doc = doc
        self.url = url
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(BASE, resource)
        self.templates = [(t, re.compile("^" + "".join(
            "[^?]+" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", t)) + "$")) for t in doc["paths"]]
        self.seen: set[tuple[str, str, str]] = set()

    def lookup(self, ptr: str) -> Any:
        node: Any = self.doc
        for key in ptr.split("/")[1:]:
            node = node[key.replace("~1", "/").replace("~0", "~")]
        return node

    def resolve(self, ptr: str) -> tuple[str, dict[str, Any]]:
        node = self.lookup(ptr)
        while "$ref" in node:
            ptr = node["$ref"][1:]
            node = self.lookup(ptr)
        return ptr, node

    def errors(self, ptr: str, instance: Any) -> list[str]:
        validator = Draft202012Validator({"$ref": f"{BASE}#{ptr}"}, registry=self.registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}"
                for e in validator.iter_errors(instance)]

    def template(self, path: str) -> str:
        found = [t for t, rx in self.templates if rx.match(path)]
        assert len(found) == 1, f"{path} matches {found} in the document"
        return found[0]

    def request_errors(self, template: str, method: str, media: str, body: Any) -> list[str]:
        op = pointer("paths", template, method)
        content = self.lookup(op)["requestBody"]["content"]
        assert media in content, f"{method} {template} documents no {media} body"
        schema = pointer("paths", template, method, "requestBody", "content", media, "schema")
        if "contentSchema" in self.lookup(schema):  # JSON sent as text/plain
            schema += "/contentSchema"
        return self.errors(schema, body)

    def call(self, method: str, path: str, expect: int | tuple[int, ...], *, body: Any = None,
             raw: bytes | None = None, media: str = JSON, valid: bool | None = True,
             headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
             cookies: dict[str, str] | None = None) -> httpx.Response:
        """Send a request, check its body against the requestBody schema (`valid`: whether
        it must match; None: not JSON at all) and the answer against its status's schema."""
        template = self.template(path)
        sent = dict(headers or {})
        content = raw
        if body is not None:
            content = (urlencode(body).encode() if media.endswith("urlencoded")
                       else orjson.dumps(body))
            if valid is not None:
                problems = self.request_errors(template, method, media, body)
                assert (not problems) == valid, (method, path, body, problems)
        if content is not None:
            sent.setdefault("Content-Type", media)
        with httpx.Client(cookies=cookies) as client:
            r = client.request(method.upper(), self.url + path, content=content, headers=sent,
                               params=params)
        assert r.status_code in ((expect,) if isinstance(expect, int) else expect), (
            method, path, r.status_code, r.text[:500])
        self.check_answer(template, method, r)
        return r

    def check_answer(self, template: str, method: str, r: httpx.Response) -> None:
        status = str(r.status_code)
        responses = self.lookup(pointer("paths", template, method, "responses"))
        assert status in responses, f"{method} {template}: {status} is not documented"
        self.seen.add((template, method, status))
        ptr, spec = self.resolve(pointer("paths", template, method, "responses", status))
        for name, header in spec.get("headers", {}).items():
            assert not header.get("required") or name in r.headers, (template, status, name)
        content = spec.get("content")
        if not content:
            assert r.content == b"", (template, status, r.text[:200])
            return
        media = r.headers.get("content-type", "").split(";")[0].strip()
        assert media in content, f"{method} {template} {status}: {media} is not documented"
        if media == JSON:
            problems = self.errors(ptr + pointer("content", media, "schema"), r.json())
            assert not problems, (method, template, status, problems, r.text[:1000])


def walk(contract: Contract, ptr: str, node: Any, seen: set[str]) -> Iterator[tuple[str, Any]]:
    """Every schema reachable from `node` (at `ptr`), following $refs once each."""
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        target = node["$ref"][1:]
        if target not in seen:
            seen.add(target)
            yield from walk(contract, target, contract.lookup(target), seen)
        return
    yield ptr, node
    for key in ("properties", "patternProperties", "$defs"):
        for name, sub in node.get(key, {}).items():
            yield from walk(contract, ptr + pointer(key, name), sub, seen)
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contentSchema"):
        if isinstance(node.get(key), dict):
            yield from walk(contract, ptr + pointer(key), node[key], seen)
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for i, sub in enumerate(node.get(key, [])):
            yield from walk(contract, ptr + pointer(key, str(i)), sub, seen)


def objects(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def schemas_of(contract: Contract, part: str) -> Iterator[tuple[str, Any]]:
    """Every schema of the operations' `part` (requestBody or responses)."""
    seen: set[str] = set()
    for template, ops in contract.doc["paths"].items():
        for method, op in ops.items():
            here = pointer("paths", template, method, part)
            places = ([here] if part == "requestBody" and "requestBody" in op else
                      [here + pointer(s) for s in op["responses"]] if part == "responses"
                      else [])
            for place in places:
                ptr, target = contract.resolve(place)
                for media, content in target.get("content", {}).items():
                    yield from walk(contract, ptr + pointer("content", media, "schema"),
                                    content["schema"], seen)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[ServerThread]:
    from pixelrelay.emulator import Emulator, create_emulator_app

    app = create_emulator_app(Emulator(access_tokens=[ACCESS_TOKEN],
                                       pixel_codes=[PIXEL, OFFLINE, CRM, APP]))
    with ServerThread(app) as server:
        yield server


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openapi") / "gw.db"


@pytest.fixture(scope="module")
def gateway(db: Path, emulator: ServerThread) -> Iterator[ServerThread]:
    base = make_settings(db, emulator.url, offline_event_set_id=OFFLINE, crm_event_set_id=CRM,
                         app_id=APP)
    sources = (
        SourceSettings(name="limited", kind="server", key=Secret(LIMITED_KEY),
                       rate_limit=0.001),
        SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                       allowed_origins=(ORIGIN,)),
        SourceSettings(name="strict", kind="browser", key=Secret(STRICT_KEY),
                       allowed_origins=(ORIGIN,), consent_required=True),
        SourceSettings(name="site-limited", kind="browser", key=Secret(LIMITED_SITE_KEY),
                       allowed_origins=(ORIGIN,), rate_limit=0.001),
        SourceSettings(name="shop", kind="shopify", key=Secret(""), secret=Secret(SHOP_SECRET)))
    # Behind a trusted proxy (this test), so X-Forwarded-For gives each guesser an address.
    server_settings = dataclasses.replace(base.server, trusted_proxies=("127.0.0.1",))
    with ServerThread(create_app(dataclasses.replace(
            base, sources=base.sources + sources, server=server_settings))) as server:
        yield server


@pytest.fixture(scope="module")
def contract(gateway: ServerThread) -> Contract:
    return Contract(document(), gateway.url)


# -- the document itself ---------------------------------------------------------------------


def test_the_served_document_is_valid_openapi_3_1_of_this_version(gateway: ServerThread) -> None:
    served = httpx.get(f"{gateway.url}/openapi.json")
    assert served.status_code == 200 and served.headers["content-type"] == JSON
    doc = served.json()
    validate_openapi(doc)
    assert doc == document()
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"] == __version__
    routes = {(r.path.replace("{event_id:path}", "{event_id}"), m.lower())
              for r in gateway.server.config.app.routes  # type: ignore[attr-defined]
              if hasattr(r, "methods") for m in r.methods or () if m != "HEAD"}
    documented = {(t, m) for t, ops in doc["paths"].items() for m in ops}
    assert routes == documented


def test_the_document_speaks_to_users_not_of_internal_specs() -> None:
    """Summaries and descriptions name the API versions the README names, and carry no
    references to the project's internal specification ("SPEC 3.3")."""
    text = orjson.dumps(document()).decode()
    assert re.search(r"SPEC \d", text) is None
    assert "API 2.0" not in text
    drop_in = document()["paths"]["/open_api/v1.3/event/track/"]["post"]["summary"]
    assert "Events API v1.3" in drop_in


def test_answers_are_closed_objects_and_requests_open_ones(contract: Contract) -> None:
    """A key added to an answer fails this module's answer checks until it is documented;
    an unknown key in a request is dropped with a warning, so request objects stay open."""
    answer_objects = [(p, n) for p, n in schemas_of(contract, "responses") if objects(n)]
    assert len(answer_objects) > 40
    open_answers = {p for p, n in answer_objects if n.get("additionalProperties") is not False}
    assert open_answers == OPEN_ANSWERS
    request_objects = [(p, n) for p, n in schemas_of(contract, "requestBody") if objects(n)]
    closed = {p for p, n in request_objects if n.get("additionalProperties") is False}
    assert closed == CLOSED_REQUESTS


def documented(contract: Contract, schema: str) -> set[str]:
    return set(contract.lookup(pointer("components", "schemas", schema, "properties")))


def test_documented_keys_are_the_keys_the_code_reads(contract: Contract) -> None:
    assert documented(contract, "Event") == parse.TOP_KEYS
    assert documented(contract, "TikTokEvent") == parse.TOP_KEYS
    assert documented(contract, "User") == user.user_keys()
    assert documented(contract, "Page") == parse.PAGE_KEYS
    assert documented(contract, "Consent") == parse._CONSENT_SET
    assert documented(contract, "App") == extras.APP_KEYS
    assert documented(contract, "Ad") == extras.AD_KEYS
    assert documented(contract, "Lead") == extras.LEAD_KEYS
    assert documented(contract, "TikTokTrackRequest") == tiktok_compat.TOP_KEYS
    assert documented(contract, "MetaEventsRequest") == meta_map.TOP_KEYS
    assert documented(contract, "Delivery") == {f.name for f in dataclasses.fields(DeliveryView)}
    assert documented(contract, "IngestRefusal") == {
        f.name for f in dataclasses.fields(RejectionRow)}


# -- the event schema refuses what the parser refuses ---------------------------------------


def event_cases(t: int) -> list[tuple[str, dict[str, Any], bool]]:
    """(what, event, accepted by the gateway)."""
    iso = datetime.fromtimestamp(t - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        ("minimal", {"event": "ViewContent"}, True),
        ("the SPEC example", {
            "event": "Purchase", "event_id": f"spec-{t}", "timestamp": t, "source": "web",
            "session_id": "s_8f2c", "order_source": "web",
            "user": {"email": "Customer@Example.com", "phone": "+49 170 1234567",
                     "external_id": "cust_34982", "ttclid": "E.C.P.CvQBA", "ttp": "2.x9Jb3x",
                     "ip": "203.0.113.42", "user_agent": "Mozilla/5.0", "locale": "de-DE"},
            "page": {"url": "https://shop.example/thanks",
                     "referrer": "https://shop.example/cart"},
            "properties": {"value": 129.95, "currency": "EUR", "order_id": f"o{t}",
                           "content_type": "product",
                           "contents": [{"content_id": "SKU-481", "quantity": 1,
                                         "price": 129.95}]},
            "consent": {"marketing": "granted", "ad_user_data": "granted",
                        "ad_personalization": "denied", "region": "DE"}}, True),
        ("blank values are absent", {
            "event": "AddToCart", "event_id": "", "timestamp": None, "event_time": "",
            "source": " ", "user": {}, "page": [], "properties": "", "consent": None,
            "app": {}, "ad": [], "lead": None, "device": {}}, True),
        ("an integer id, milliseconds, any-case source",
         {"event": "Search", "event_id": 77000 + t % 1000, "timestamp": t * 1000,
          "source": " WEB "}, True),
        ("an ISO 8601 time", {"event": "Search", "timestamp": iso}, True),
        ("lists of match keys", {"event": "Lead", "user": {
            "email": ["a@example.com", "", None, "b@example.com"], "phone": "+12133734253",
            "external_id": ["u1"], "first_name": ["Ann"], "zip_code": "10115",
            "country": "DE", "ip": "2001:db8::1", "locale": "de-DE"}}, True),
        ("numbers as strings, one content as an object", {"event": "Purchase", "properties": {
            "value": "129.95", "currency": "eur", "num_items": "3", "content_ids": 12,
            "contents": {"content_id": 481, "quantity": "2", "price": "10.5", "brand": 7},
            "order_id": 880000 + t % 1000, "content_type": "product", "description": 12.5,
            "custom": {"kept": [1]}}}, True),
        ("consent as booleans and any case", {"event": "ViewContent", "consent": {
            "marketing": True, "ad_user_data": "GRANTED", "ad_personalization": False,
            "region": "de"}}, True),
        ("Google Consent Mode names", {"event": "ViewContent", "consent": {
            "ad_storage": "granted", "analytics_storage": "anything"}}, True),
        ("a crm event with its lead", {"event": "SubmitForm", "source": "crm",
                                       "lead": {"lead_id": 7001,
                                                "lead_event_source": "hubspot"}}, True),
        ("an app event", {"event": "Purchase", "source": "app",
                          "app": {"app_id": APP, "app_name": "Shop", "app_version": 3},
                          "ad": {"callback": "cb", "campaign_id": 5, "is_retargeting": False},
                          "user": {"idfa": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
                                   "att_status": "authorized"}}, True),
        ("client hints", {"event": "ViewContent", "device": {
            "platform": "Android", "mobile": True, "bitness": 64, "brands": ["Chrome"],
            "model": ""}}, True),
        ("unknown keys are dropped", {"event": "ViewContent", "colour": "red",
                                      "user": {"emial": "x"}, "page": {"title": "Home"}}, True),
        ("unusable match keys are dropped", {"event": "ViewContent",
                                             "user": {"email": "not-an-email"}}, True),
        ("the flags and codes", {"event": "ViewContent", "limited_data_use": True,
                                 "test_event_code": "TEST123", "session_id": "s_1",
                                 "order_source": "web"}, True),
        ("no event name", {"properties": {}}, False),
        ("a blank event name", {"event": "  "}, False),
        ("an event name that is a number", {"event": 5}, False),
        ("an event name over 100 characters", {"event": "x" * 101}, False),
        ("a fractional event_id", {"event": "A", "event_id": 1.5}, False),
        ("an event_id over 256 characters", {"event": "A", "event_id": "x" * 257}, False),
        ("a timestamp in words", {"event": "A", "timestamp": "yesterday"}, False),
        ("a negative timestamp", {"event": "A", "timestamp": -5}, False),
        ("a boolean timestamp", {"event": "A", "timestamp": True}, False),
        ("an unknown source", {"event": "A", "source": "email"}, False),
        ("user as a string", {"event": "A", "user": "alice"}, False),
        ("an email that is a number", {"event": "A", "user": {"email": 5}}, False),
        ("eleven emails", {"event": "A", "user": {
            "email": [f"u{i}@example.com" for i in range(11)]}}, False),
        ("an invalid IP", {"event": "A", "user": {"ip": "999.1.1.1"}}, False),
        ("an empty list for a string field", {"event": "A", "user": {"ttclid": []}}, True),
        ("a blank boolean", {"event": "A", "limited_data_use": ""}, True),
        ("a list of strings for a string field", {"event": "A", "user": {"ttp": ["x"]}},
         False),
        ("an unknown att_status", {"event": "A", "user": {"att_status": "maybe"}}, False),
        ("a page url that is a number", {"event": "A", "page": {"url": 5}}, False),
        ("properties as a string", {"event": "A", "properties": "x"}, False),
        ("a negative value", {"event": "A", "properties": {"value": -1}}, False),
        ("a value with a decimal comma", {"event": "A", "properties": {"value": "12,50"}},
         False),
        ("currency EURO", {"event": "A", "properties": {"currency": "EURO"}}, False),
        ("contents as a string", {"event": "A", "properties": {"contents": "SKU-1"}}, False),
        ("a content that is a number", {"event": "A", "properties": {"contents": [5]}}, False),
        ("a negative quantity", {"event": "A", "properties": {"contents": [
            {"quantity": -1}]}}, False),
        ("an unknown content_type", {"event": "A", "properties": {"content_type": "item"}},
         False),
        ("a fractional num_items", {"event": "A", "properties": {"num_items": 1.5}}, False),
        ("a query over 1000 characters", {"event": "A", "properties": {"query": "q" * 1001}},
         False),
        ("consent yes", {"event": "A", "consent": {"marketing": "yes"}}, False),
        ("consent as a string", {"event": "A", "consent": "granted"}, False),
        ("an app without app_id", {"event": "A", "app": {"app_name": "Shop"}}, False),
        ("an app event without app", {"event": "A", "source": "app"}, False),
        ("a crm event without lead", {"event": "A", "source": "CRM"}, False),
        ("a lead without lead_id", {"event": "A", "lead": {"lead_event_source": "hubspot"}},
         False),
        ("is_retargeting as a string", {"event": "A", "ad": {"is_retargeting": "yes"}}, False),
        ("a nested object in device", {"event": "A", "device": {"a": {"b": 1}}}, False),
        ("33 device keys", {"event": "A", "device": {f"k{i}": "v" for i in range(33)}}, False),
        ("limited_data_use as a string", {"event": "A", "limited_data_use": "true"}, False),
        ("a test_event_code over 64 characters", {"event": "A", "test_event_code": "T" * 65},
         False),
        ("an empty list as test_event_code", {"event": "A", "test_event_code": []}, True),
        ("a session_id that is a number", {"event": "A", "session_id": 5}, False),
    ]


# The schema cannot know the server's clock or the destinations' windows.
CLOCK_CASES = [("8 days old", -8 * 86400), ("an hour ahead", 3600)]


def test_the_event_schema_refuses_exactly_what_the_gateway_refuses(contract: Contract) -> None:
    t = now()
    cases = event_cases(t)
    clock = [(what, {"event": "ViewContent", "timestamp": t + delta}, False)
             for what, delta in CLOCK_CASES]
    events = [e for _, e, _ in cases + clock]
    body = contract.call("post", "/v1/events", 202, body={"events": events}, valid=False,
                         headers=SERVER).json()
    refused = {r["index"] for r in body["rejected"]}
    event_schema = pointer("components", "schemas", "Event")
    for i, (what, event, accepted) in enumerate(cases):
        assert (i not in refused) == accepted, (what, body["rejected"])
        assert (not contract.errors(event_schema, event)) == accepted, what
    for i, (what, event, _) in enumerate(clock, start=len(cases)):
        assert i in refused and not contract.errors(event_schema, event), what
    warned = " ".join(body["warnings"])
    assert "colour: unknown field" in warned and "user.emial" in warned
    assert "user.email: not a valid email address" in warned


def track_cases(t: int) -> list[tuple[str, dict[str, Any], bool]]:
    """(what, drop-in request, accepted) for POST /open_api/v1.3/event/track/."""
    def web(*data: dict[str, Any], **top: Any) -> dict[str, Any]:
        return {"event_source": "web", "event_source_id": PIXEL, "data": list(data), **top}
    item = {"event": "CompletePayment", "event_time": t, "event_id": f"tt-{t}",
            "user": {"email": "a@example.com"}, "properties": {"value": 5, "currency": "USD"}}
    return [
        ("TikTok's body", web(item), True),
        ("with partner_name, an unknown key and ignored item keys", web(
            {**item, "event_id": f"tt2-{t}", "timestamp": "garbage", "source": "bogus"},
            partner_name="Segment", test_event_code="TEST1", extra=1), True),
        ("a crm event with its lead", {"event_source": "crm", "event_source_id": CRM,
                                       "data": [{"event": "SubmitForm", "event_time": t,
                                                 "lead": {"lead_id": "L1"}}]}, True),
        ("an integer event_source_id", {"event_source": "offline",
                                        "event_source_id": int(OFFLINE),
                                        "data": [{**item, "event_id": f"tt3-{t}"}]}, True),
        ("an unknown event_source", {**web(item), "event_source": "email"}, False),
        ("no data", web(), False),
        ("no event_time", web({"event": "ViewContent"}), False),
        ("event_time as a string", web({"event": "ViewContent", "event_time": str(t)}), False),
        ("event_time as a boolean", web({"event": "ViewContent", "event_time": True}), False),
        ("a crm event without lead", {"event_source": "crm", "event_source_id": CRM,
                                      "data": [{"event": "SubmitForm", "event_time": t}]},
         False),
        ("one bad event refuses the request", web(item, {"event": 5, "event_time": t}), False),
        ("no event_source_id", {"event_source": "web", "data": [item]}, False),
    ]


def test_the_drop_in_schema_refuses_what_the_gateway_refuses(contract: Contract) -> None:
    headers = {"Access-Token": SOURCE_KEY}
    for what, request, accepted in track_cases(now()):
        r = contract.call("post", "/open_api/v1.3/event/track/", 200, body=request,
                          valid=None, headers=headers)
        assert (r.json()["code"] == 0) == accepted, (what, r.json())
        schema = pointer("components", "schemas", "TikTokTrackRequest")
        assert (not contract.errors(schema, request)) == accepted, what
    # Known only to the configuration: which ids are configured, and for which source.
    t = now()
    for request in ({"event_source": "web", "event_source_id": "C_UNKNOWN",
                     "data": [{"event": "ViewContent", "event_time": t}]},
                    {"event_source": "offline", "event_source_id": PIXEL,
                     "data": [{"event": "ViewContent", "event_time": t}]}):
        r = contract.call("post", "/open_api/v1.3/event/track/", 200, body=request,
                          headers=headers)
        assert r.json()["code"] == 40002 and "event_source_id" in r.json()["message"]


# -- every operation, good and bad requests --------------------------------------------------


def shopify(contract: Contract, expect: int, payload: Any, *, topic: str = "orders/create",
            source: str = "shop", signature: str | None = None,
            valid: bool | None = True) -> httpx.Response:
    body = orjson.dumps(payload)
    signed = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest())
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": "wh-openapi",
               "X-Shopify-Hmac-Sha256": signed.decode() if signature is None else signature}
    if valid is not None:
        assert not contract.request_errors("/v1/webhooks/shopify/{source}", "post", JSON,
                                           payload)
    return contract.call("post", f"/v1/webhooks/shopify/{source}", expect, raw=body,
                         valid=None, headers=headers)


def order(order_id: int, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(ORDER.read_bytes())
    stamp = datetime.fromtimestamp(now() - 120, UTC).isoformat()
    doc.update({"id": order_id, "created_at": stamp, "processed_at": stamp, **changes})
    return doc


def collect(contract: Contract, expect: int, hit: dict[str, Any], *, key: str | None = SITE_KEY,
            origin: str = ORIGIN, valid: bool = True,
            cookies: dict[str, str] | None = None) -> httpx.Response:
    body = hit if key is None else {"k": key, **hit}
    return contract.call("post", "/v1/collect", expect, body=body, media="text/plain",
                         valid=valid, headers={"Origin": origin}, cookies=cookies)


def admin_without_a_token(tmp_path: Path, emulator: ServerThread) -> set[tuple[str, str, str]]:
    """A gateway without server.admin_token: the admin operations are forbidden."""
    settings = make_settings(tmp_path / "no-admin.db", emulator.url)
    settings = dataclasses.replace(settings, server=dataclasses.replace(
        settings.server, admin_token=Secret("")))
    with ServerThread(create_app(settings)) as server:
        c = Contract(document(), server.url)
        c.call("get", "/v1/deliveries", 403, headers=ADMIN, params={"event_id": "x"})
        c.call("post", "/v1/destinations/tiktok/resume", 403, headers=ADMIN)
        c.call("get", "/v1/diagnostics", 403, headers=ADMIN)
        c.call("get", "/v1/events/x/trace", 403, headers=ADMIN)
        c.call("get", "/", 401, headers=ADMIN)
    return c.seen


def credentials_limited(c: Contract) -> None:
    """Each kind of credential, guessed from one address until the guard answers 429; every
    answer on the way (401, or TikTok's 40105) is checked too."""
    def guess(address: str, method: str, path: str, **kw: Any) -> httpx.Response:
        forwarded = {"X-Forwarded-For": address, **kw.pop("headers", {})}
        for _ in range(40):
            r = c.call(method, path, (401, 429, 200), headers=forwarded, **kw)
            if r.status_code == 429:
                return r
        raise AssertionError(f"{path}: no 429 after 40 wrong credentials from {address}")

    wrong_admin = {"X-Admin-Token": "wrong"}
    guess("198.51.100.1", "post", "/v1/events", body={"event": "A"},
          headers={"Authorization": "Bearer wrong"})
    r = guess("198.51.100.2", "post", "/open_api/v1.3/event/track/", body={}, valid=False,
              headers={"Access-Token": "wrong"})
    assert r.json()["code"] == 40100
    guess("198.51.100.3", "post", "/v1/collect", body={"k": "wrong"}, media="text/plain")
    for _ in range(40):  # Meta's drop-in answers a wrong token 400 (code 190), as Graph does
        r = c.call("post", META_EDGE, (400, 429), params={"access_token": "wrong"},
                   headers={"X-Forwarded-For": "198.51.100.6"}, body={"data": []}, valid=False)
        if r.status_code == 429:
            assert r.json()["error"]["code"] == 4
            break
    else:
        raise AssertionError(f"{META_EDGE}: no 429 after 40 wrong tokens")
    guess("198.51.100.4", "post", "/v1/webhooks/shopify/shop", raw=b"{}",
          headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "bm9wZQ=="})
    for method, path in (("get", "/v1/deliveries"), ("post", "/v1/destinations/tiktok/resume"),
                         ("get", "/v1/diagnostics"), ("get", "/v1/events/x/trace"),
                         ("get", "/")):
        guess("198.51.100.5", method, path, headers=wrong_admin)
    guess("198.51.100.5", "post", "/login", body={"token": "wrong"},
          media="application/x-www-form-urlencoded")


def raw_exchange(port: int, request: bytes) -> httpx.Response:
    """Send `request` as is and read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        sock.settimeout(20)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def stalled_bodies(tmp_path: Path, emulator: ServerThread) -> set[tuple[str, str, str]]:
    """A body that never completes gets 408 after server.body_timeout_s, at every way in."""
    base = make_settings(tmp_path / "stall.db", emulator.url)
    shop = SourceSettings(name="shop", kind="shopify", key=Secret(""), secret=Secret(SHOP_SECRET))
    settings = dataclasses.replace(base, sources=(*base.sources, shop),
                                   server=dataclasses.replace(base.server, body_timeout_s=0.5))
    with ServerThread(create_app(settings)) as server:
        c = Contract(document(), server.url)
        signed_in = httpx.post(f"{server.url}/login", data={"token": ADMIN_TOKEN})
        cookie = f"Cookie: pixelrelay_session={signed_in.cookies['pixelrelay_session']}\r\n"
        for path, extra in (("/v1/events", f"Authorization: Bearer {SOURCE_KEY}\r\n"),
                            ("/open_api/v1.3/event/track/", f"Access-Token: {SOURCE_KEY}\r\n"),
                            (f"{META_EDGE}?access_token={SOURCE_KEY}", ""),
                            ("/v1/collect", ""), ("/v1/webhooks/shopify/shop", ""),
                            ("/login", ""), ("/destinations/tiktok/resume", cookie)):
            r = raw_exchange(server.port, (
                f"POST {path} HTTP/1.1\r\nHost: gw\r\n{extra}Content-Length: 1000\r\n\r\n"
                '{"events": [').encode())
            assert r.status_code == 408, (path, r.text)
            c.check_answer(c.template(path.partition("?")[0]), "post", r)
    return c.seen


def test_every_operation_answers_as_documented(contract: Contract, emulator: ServerThread,
                                               db: Path, tmp_path: Path) -> None:
    c = contract
    t = now()
    too_big = b'{"events": [' + b'{"event": "A"},' * 80_000 + b'{"event": "A"}]}'

    # POST /v1/events
    r = c.call("post", "/v1/events", 202, headers=SERVER, body={
        "event": "Purchase", "timestamp": t, "user": {"email": "a@example.com"},
        "properties": {"order_id": f"oa{t}", "value": 10, "currency": "EUR"}})
    event_id = r.json()["event_ids"][0]
    c.call("post", "/v1/events", 202, headers=SERVER, valid=False,
           body={"events": [{"event": "ViewContent"}, {"event": 5}], "batch": "x"})
    c.call("post", "/v1/events", 202, headers={"X-Pixelrelay-Key": SITE_KEY, "Origin": ORIGIN},
           body={"event": "ViewContent"})
    c.call("post", "/v1/events", 400, headers=SERVER, raw=b"{not json")
    c.call("post", "/v1/events", 400, headers=SERVER, body={"events": []}, valid=False)
    c.call("post", "/v1/events", 400, headers=SERVER, body=[{"event": "A"}], valid=False)
    c.call("post", "/v1/events", 401, body={"event": "A"})
    c.call("post", "/v1/events", 401, headers={"Authorization": "Bearer nope"},
           body={"event": "A"})
    c.call("post", "/v1/events", 403, body={"event": "A"},
           headers={"X-Pixelrelay-Key": SITE_KEY, "Origin": "http://evil.test"})
    c.call("post", "/v1/events", 413, headers=SERVER, raw=too_big)
    c.call("post", "/v1/events", 413, headers=SERVER, valid=False,
           body={"events": [{"event": "A"}] * 501})
    limited = {"Authorization": f"Bearer {LIMITED_KEY}"}
    c.call("post", "/v1/events", 202, headers=limited, body={"event": "ViewContent"})
    c.call("post", "/v1/events", 429, headers=limited, body={"event": "ViewContent"})

    # The drop-in: HTTP 200 whatever the code (429 only for a guesser, below)
    track = "/open_api/v1.3/event/track/"
    r = c.call("post", track, 200, body={"event_source": "web", "event_source_id": PIXEL,
                                         "data": [{"event": "ViewContent", "event_time": t}]})
    assert r.json()["code"] == 40104
    r = c.call("post", track, 200, headers={"Access-Token": "wrong"},
               body={"event_source": "web", "event_source_id": PIXEL, "data": []}, valid=False)
    assert r.json()["code"] == 40105
    r = c.call("post", track, 200, headers={"Access-Token": SOURCE_KEY}, raw=b"[")
    assert r.json()["code"] == 40002
    r = c.call("post", track, 200, headers={"Access-Token": SOURCE_KEY}, raw=too_big)
    assert r.json()["code"] == 40002

    # Meta's drop-in: Graph's answers and error objects
    meta_event = {"event_name": "Purchase", "event_time": t, "action_source": "website",
                  "event_id": f"meta-{t}", "event_source_url": "https://shop.test/thanks",
                  "user_data": {"em": "a@example.com", "client_user_agent": "Mozilla/5.0"},
                  "custom_data": {"value": 5, "currency": "EUR"}}
    token = {"access_token": SOURCE_KEY}
    r = c.call("post", META_EDGE, 200, params=token, body={"data": [meta_event]})
    assert r.json()["events_received"] == 1
    c.call("post", META_EDGE, 200, media="application/x-www-form-urlencoded", body={
        "data": orjson.dumps([orjson.dumps({**meta_event, "event_id": f"meta2-{t}"}).decode()]
                             ).decode(), "access_token": SOURCE_KEY})
    assert c.call("post", META_EDGE, 400, body={"data": [meta_event]}
                  ).json()["error"]["code"] == 104
    assert c.call("post", META_EDGE, 400, body={"data": [meta_event], "access_token": "x"}
                  ).json()["error"]["code"] == 190
    r = c.call("post", META_EDGE, 400, params=token, valid=False,
               body={"data": [{**meta_event, "action_source": "fax"}]})
    assert "data[0].action_source" in r.json()["error"]["message"]
    c.call("post", META_EDGE, 413, params=token, raw=too_big)

    # The browser: tag, preflight, hits
    tag = c.call("get", "/tag.js", 200, params={"k": SITE_KEY})
    c.call("get", "/tag.js", 200)
    c.call("get", "/tag.js", 304, headers={"If-None-Match": tag.headers["etag"]})
    c.call("options", "/v1/collect", 204, headers={"Origin": ORIGIN})
    c.call("options", "/v1/collect", 400)
    c.call("options", "/v1/collect", 403, headers={"Origin": "http://evil.test"})
    hit = collect(c, 202, {"event": "ViewContent", "event_id": f"hit-{t}",
                           "page": {"url": "https://shop.test/p?ttclid=E.C.P.oa"},
                           "consent": {"marketing": "granted"}, "consent_source": "explicit"})
    assert "prx_sid" in hit.headers["set-cookie"]
    collect(c, 202, {"link": {"cart_token": "cart-oa"}, "identify": {"email": "a@example.com"},
                     "sid": "s_" + "0" * 32})
    collect(c, 202, {"event": "AddToCart", "properties": {"currency": "EURO"}}, valid=False)
    collect(c, 202, {"consent": {"marketing": "denied"}, "link": {"checkout_token": "co-oa"}})
    collect(c, 202, {"page": {"url": "https://shop.test/"}}, key=STRICT_KEY)
    collect(c, 202, {"event": "ViewContent"}, key=STRICT_KEY)
    collect(c, 400, {"link": {}}, valid=False)
    collect(c, 400, {"link": {"basket": "x"}}, valid=False)
    c.call("post", "/v1/collect", 400, raw=b"{", media="text/plain")
    c.call("post", "/v1/collect", 400, raw=b"[1]", media="text/plain")
    collect(c, 401, {"event": "ViewContent"}, key="wrong")
    collect(c, 401, {"event": "ViewContent"}, key=None)
    collect(c, 403, {"event": "ViewContent"}, origin="http://evil.test")
    c.call("post", "/v1/collect", 413, raw=b'{"k": "' + b"x" * 70_000 + b'"}',
           media="text/plain")
    collect(c, 202, {"event": "ViewContent"}, key=LIMITED_SITE_KEY)
    collect(c, 429, {"event": "ViewContent"}, key=LIMITED_SITE_KEY)

    # Shopify
    shopify(c, 200, order(9_100_000_000 + t % 1000))
    shopify(c, 200, order(9_100_000_000 + t % 1000))  # a redelivery: a duplicate
    shopify(c, 200, order(9_200_000_000 + t % 1000), topic="orders/paid")  # ignored here
    shopify(c, 200, {"id": 1}, topic="customers/create")
    shopify(c, 401, order(1), signature="bm9wZQ==")
    shopify(c, 404, order(1), source="nope")
    shopify(c, 400, {"name": "#1001"})
    old = datetime.fromtimestamp(t - 30 * 86400, UTC).isoformat()
    shopify(c, 422, order(9_300_000_000 + t % 1000, created_at=old))
    c.call("post", "/v1/webhooks/shopify/shop", 400, raw=b"{", headers={
        "X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": base64.b64encode(
            hmac.new(SHOP_SECRET.encode(), b"{", hashlib.sha256).digest()).decode()})
    c.call("post", "/v1/webhooks/shopify/shop", 413, raw=too_big,
           headers={"X-Shopify-Topic": "orders/create"})

    # Admin: delivery log, resume
    c.call("get", "/v1/deliveries", 200, headers=ADMIN, params={"event_id": event_id})
    c.call("get", "/v1/deliveries", 200, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
           params={"order_id": str(9_300_000_000 + t % 1000)})
    c.call("get", "/v1/deliveries", 400, headers=ADMIN)
    c.call("get", "/v1/deliveries", 401, params={"event_id": event_id})
    c.call("post", "/v1/destinations/tiktok/resume", 200, headers=ADMIN)
    c.call("post", "/v1/destinations/nope/resume", 404, headers=ADMIN)
    c.call("post", "/v1/destinations/tiktok/resume", 401, headers={"X-Admin-Token": "wrong"})

    # Diagnostics: JSON, traces, the page, sign-in
    for window in ("1h", "24h", "7d"):
        c.call("get", "/v1/diagnostics", 200, headers=ADMIN, params={"window": window})
    c.call("get", "/v1/diagnostics", 400, headers=ADMIN, params={"window": "1y"})
    c.call("get", "/v1/diagnostics", 401)
    c.call("get", f"/v1/events/{event_id}/trace", 200, headers=ADMIN)
    c.call("get", f"/v1/events/hit-{t}/trace", 200, headers={**ADMIN, "Accept": "text/html"})
    c.call("get", "/v1/events/a/b/trace", 404, headers=ADMIN)
    c.call("get", "/v1/events/nope/trace", 404, headers={**ADMIN, "Accept": "text/html"})
    c.call("get", f"/v1/events/{event_id}/trace", 401)
    c.call("get", f"/v1/events/{event_id}/trace", 401, headers={"Accept": "text/html"})
    c.call("get", "/", 200, headers=ADMIN, params={"window": "7d", "q": event_id})
    c.call("get", "/", 200, headers=ADMIN, params={"state": "pending", "channel": "server",
                                                   "destination": "tiktok"})
    c.call("get", "/", 400, headers=ADMIN, params={"state": "lost"})
    c.call("get", "/", 401)
    c.call("get", "/login", 200)
    c.call("post", "/login", 401, body={"token": "wrong"},
           media="application/x-www-form-urlencoded")
    signed_in = c.call("post", "/login", 303, body={"token": ADMIN_TOKEN},
                       media="application/x-www-form-urlencoded")
    session = {"pixelrelay_session": signed_in.cookies["pixelrelay_session"]}
    c.call("get", "/v1/diagnostics", 200, cookies=session)
    form = "application/x-www-form-urlencoded"
    csrf = {"csrf": csrf_token(ADMIN_TOKEN, session["pixelrelay_session"])}
    c.call("post", "/destinations/tiktok/resume", 303, cookies=session, body=csrf, media=form)
    c.call("post", "/destinations/nope/resume", 404, cookies=session, body=csrf, media=form)
    c.call("post", "/destinations/tiktok/resume", 403, body=csrf, media=form)
    c.call("post", "/destinations/tiktok/resume", 403, cookies=session, media=form,
           body={"csrf": csrf_token(ADMIN_TOKEN, "another session")})
    c.call("post", "/destinations/tiktok/resume", 403, cookies=session, body=csrf, media=form,
           headers={"Origin": "http://evil.test"})
    c.call("post", "/destinations/tiktok/resume", 413, cookies=session, media=form,
           raw=b"csrf=" + b"x" * 5000)
    c.call("post", "/logout", 303, cookies=session)
    c.call("post", "/destinations/tiktok/resume", 403, cookies=session, body=csrf, media=form)

    # Operations
    c.call("get", "/healthz", 200)
    c.call("get", "/metrics", 200)
    c.call("get", "/openapi.json", 200)

    # The store unable to read or write admin sessions: a signed-in request answers "retry".
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE admin_sessions RENAME TO admin_sessions_away")
        conn.execute("ALTER TABLE ingest_rejections RENAME TO ingest_rejections_away")
    try:
        c.call("get", "/v1/deliveries", 503, headers=ADMIN, params={"event_id": event_id})
        c.call("get", "/v1/diagnostics", 503, cookies=session)
        c.call("get", f"/v1/events/{event_id}/trace", 503, cookies=session)
        c.call("get", "/", 503, cookies=session)
        c.call("post", "/login", 503, body={"token": ADMIN_TOKEN},
               media="application/x-www-form-urlencoded")
        c.call("post", "/logout", 503, cookies=session)
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE admin_sessions_away RENAME TO admin_sessions")
            conn.execute("ALTER TABLE ingest_rejections_away RENAME TO ingest_rejections")
    c.call("post", "/login", 413, raw=b"token=" + b"x" * 5000,
           media="application/x-www-form-urlencoded")

    signed_in = c.call("post", "/login", 303, body={"token": ADMIN_TOKEN},
                       media="application/x-www-form-urlencoded")
    page_session = {"pixelrelay_session": signed_in.cookies["pixelrelay_session"]}
    csrf2 = {"csrf": csrf_token(ADMIN_TOKEN, page_session["pixelrelay_session"])}
    credentials_limited(c)

    # The store refusing to commit: every way in answers "retry", and nothing is kept.
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER openapi_full BEFORE INSERT ON events "
                     "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        conn.execute("CREATE TRIGGER openapi_full_too BEFORE INSERT ON destinations "
                     "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    try:
        c.call("post", "/v1/destinations/tiktok/resume", 503, headers=ADMIN)
        c.call("post", "/destinations/tiktok/resume", 503, cookies=page_session, body=csrf2,
               media="application/x-www-form-urlencoded")
        c.call("post", "/v1/events", 503, headers=SERVER, body={"event": "ViewContent"})
        collect(c, 503, {"event": "ViewContent"})
        shopify(c, 503, order(9_400_000_000 + t % 1000))
        r = c.call("post", track, 200, headers={"Access-Token": SOURCE_KEY}, body={
            "event_source": "web", "event_source_id": PIXEL,
            "data": [{"event": "ViewContent", "event_time": t}]})
        assert r.json()["code"] == 50000
        r = c.call("post", META_EDGE, 500, params={"access_token": SOURCE_KEY},
                   body={"data": [{"event_name": "Lead", "event_time": now(),
                                   "action_source": "system_generated", "user_data": {}}]})
        assert r.json()["error"]["is_transient"] is True
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER openapi_full")
            conn.execute("DROP TRIGGER openapi_full_too")

    c.seen |= admin_without_a_token(tmp_path, emulator)
    c.seen |= stalled_bodies(tmp_path, emulator)
    operations = {(tpl, m) for tpl, ops in c.doc["paths"].items() for m in ops}
    assert {(tpl, m) for tpl, m, _ in c.seen} == operations
    statuses = {(tpl, m, s) for tpl, ops in c.doc["paths"].items() for m, op in ops.items()
                for s in op["responses"]}
    assert statuses - NOT_EXERCISED - c.seen == set()

