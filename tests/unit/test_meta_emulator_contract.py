"""The Meta emulator's judging: each rule of Meta's contract (meta-capi.md) refuses what it should,
with Meta's code and subcode, and a valid request passes in every encoding Meta takes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from pixelrelay.clock import FakeClock
from pixelrelay.emulator.meta import MetaEmulator, MetaFaults, judge
from pixelrelay.emulator.meta import graph as g
from pixelrelay.emulator.meta.state import Reply

T0 = 1_776_943_380
DAY = 86400
PIXEL = "123456789012345"
TOKEN = "EAAtoken"
# Meta's published vectors (meta-capi.md §8).
EM = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
PH = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
COUNTRY = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
FBC = "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
FBP = "fb.1.1596403881668.1116446470"


def web_event(**overrides: Any) -> dict[str, Any]:
    """meta-capi.md §1.6's minimal web Purchase."""
    ev: dict[str, Any] = {
        "event_name": "Purchase",
        "event_time": T0 - 60,
        "event_id": "order_10492",
        "action_source": "website",
        "event_source_url": "https://shop.example/thanks",
        "user_data": {
            "em": [EM], "ph": [PH], "country": [COUNTRY], "external_id": ["cust_34982"],
            "client_ip_address": "203.0.113.42", "client_user_agent": "Mozilla/5.0",
            "fbc": FBC, "fbp": FBP,
        },
        "custom_data": {
            "currency": "EUR", "value": 129.95, "order_id": "10492", "content_type": "product",
            "content_ids": ["SKU-481"],
            "contents": [{"id": "SKU-481", "quantity": 1, "item_price": 129.95}],
            "num_items": 1,
        },
        "data_processing_options": [],
    }
    ev.update(overrides)
    return ev


def params(*events: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"data": list(events) or [web_event()], "test_event_code": "TEST12345",
            "partner_agent": "pixelrelay-0.x", **top}


def problems_of(p: dict[str, Any], now: float = T0) -> list[str]:
    return judge(p, now).errors


def test_the_minimal_web_example_is_valid() -> None:
    verdict = judge(params(), T0)
    assert verdict.error is None and verdict.problems == []
    # Meta's SDK sends external_id unhashed: accepted, noted.
    assert verdict.notices == [
        "data.0.user_data.external_id: not hashed (accepted; Meta recommends SHA-256)"
    ]


def test_sdk_style_data_of_json_encoded_events_is_valid() -> None:
    encoded = orjson.dumps([orjson.dumps(web_event()).decode()]).decode()
    verdict = judge({"data": encoded}, T0)
    assert verdict.error is None
    assert verdict.events[0]["event_id"] == "order_10492"


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(ev: dict[str, Any]) -> None:
        obj = ev
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]
    return mutate


def _set(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(ev: dict[str, Any]) -> None:
        obj = ev
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return mutate


RULES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no event_name", _drop("event_name"), "data.0.event_name: Missing data for required field"),
    ("no event_time", _drop("event_time"), "data.0.event_time: Missing data for required field"),
    ("event_time as text", _set(str(T0), "event_time"), "data.0.event_time: Not a valid integer"),
    ("event_time in ms", _set(T0 * 1000, "event_time"),
     "data.0.event_time: Must be Unix seconds, not milliseconds"),
    ("event_time ahead", _set(T0 + 3600, "event_time"),
     "data.0.event_time: Must not be in the future"),
    ("no action_source", _drop("action_source"),
     "data.0.action_source: Missing data for required field"),
    ("bad action_source", _set("web", "action_source"), "data.0.action_source: Must be one of"),
    ("website without url", _drop("event_source_url"),
     "data.0.event_source_url: Missing data for required field (action_source website)"),
    ("url not http", _set("shop.example/thanks", "event_source_url"),
     "data.0.event_source_url: Must be an http(s) URL"),
    ("website without UA", _drop("user_data", "client_user_agent"),
     "data.0.user_data.client_user_agent: Missing data for required field"),
    ("no user_data", _drop("user_data"), "data.0.user_data: Missing data for required field"),
    ("empty user_data", _set({}, "user_data"),
     "data.0.user_data: At least one customer information parameter is required"),
    ("event_id number", _set(42, "event_id"), "data.0.event_id: Not a valid string"),
    ("event_id empty", _set("", "event_id"), "data.0.event_id: Must not be empty"),
    ("test code in event", _set("T1", "test_event_code"),
     "data.0.test_event_code: Unknown field; it belongs at the request's top level"),
    ("raw email", _set(["alice@example.com"], "user_data", "em"),
     "data.0.user_data.em.0: Not a SHA-256 hex digest (64 lowercase hex characters); unhashed "
     "customer information is refused (hash the trimmed, lowercased email)"),
    ("raw phone", _set("+16505551212", "user_data", "ph"),
     "data.0.user_data.ph: Not a SHA-256 hex digest (64 lowercase hex characters); unhashed "
     "customer information is refused (hash the digits with the country code, without '+')"),
    ("upper-case hash", _set([EM.upper()], "user_data", "em"),
     "data.0.user_data.em.0: SHA-256 hex digest must be lowercase"),
    ("hash of empty", _set(hashlib.sha256(b"").hexdigest(), "user_data", "fn"),
     "data.0.user_data.fn: SHA-256 of an empty string matches nobody"),
    ("raw city", _set("Menlo Park", "user_data", "ct"), "data.0.user_data.ct: Not a SHA-256"),
    ("raw country", _set(["us"], "user_data", "country"),
     "data.0.user_data.country.0: Not a SHA-256"),
    ("raw zip", _set("94035", "user_data", "zp"), "data.0.user_data.zp: Not a SHA-256"),
    ("hashed IP", _set(EM, "user_data", "client_ip_address"),
     "data.0.user_data.client_ip_address: Not a valid IPv4 or IPv6 address (never hashed)"),
    ("hashed UA", _set(EM, "user_data", "client_user_agent"),
     "data.0.user_data.client_user_agent: Must not be hashed"),
    ("hashed fbc", _set(EM, "user_data", "fbc"), "data.0.user_data.fbc: Must not be hashed"),
    ("fbc in seconds", _set("fb.1.1554763741.IwAR2F4", "user_data", "fbc"),
     "data.0.user_data.fbc: Creation time must be Unix milliseconds (13 digits)"),
    ("fbc without prefix", _set("IwAR2F4-dbP0l7Mn1", "user_data", "fbc"),
     "data.0.user_data.fbc: Must be fb.<subdomain index>.<creation time in ms>.<fbclid>"),
    ("fbp not numeric", _set("fb.1.1596403881668.abc", "user_data", "fbp"),
     "data.0.user_data.fbp: Must be fb.<subdomain index>.<creation time in ms>.<random number>"),
    ("bad appendix", _set(FBP + ".XYZ", "user_data", "fbp"),
     "data.0.user_data.fbp: Appendix (5th segment) must be Meta's Parameter Builder appendix"),
    ("Purchase without value", _drop("custom_data", "value"),
     "data.0.custom_data.value: Required for Purchase events"),
    ("value as text", _set("129.95", "custom_data", "value"),
     "data.0.custom_data.value: Not a valid number"),
    ("value without currency", _drop("custom_data", "currency"),
     "data.0.custom_data.currency: Missing data for required field (required with value)"),
    ("bad currency", _set("EURO", "custom_data", "currency"),
     "data.0.custom_data.currency: Must be an ISO 4217 code"),
    ("TikTok's contents", _set([{"content_id": "SKU", "price": 3.5}], "custom_data", "contents"),
     "data.0.custom_data.contents.0.id: Missing data for required field (content_id is TikTok's"),
    ("quantity as text", _set([{"id": "SKU", "quantity": "1"}], "custom_data", "contents"),
     "data.0.custom_data.contents.0.quantity: Not a valid integer"),
    ("content_ids numbers", _set([481], "custom_data", "content_ids"),
     "data.0.custom_data.content_ids: Must be a list of strings"),
    ("bad content_type", _set("sku", "custom_data", "content_type"),
     "data.0.custom_data.content_type: Must be one of: product, product_group"),
    ("num_items float", _set(1.5, "custom_data", "num_items"),
     "data.0.custom_data.num_items: Not a valid integer"),
    ("order_id number", _set(10492, "custom_data", "order_id"),
     "data.0.custom_data.order_id: Not a valid string"),
    ("DPO not LDU", _set(["GDPR"], "data_processing_options"),
     'data.0.data_processing_options: Must be [] or ["LDU"]'),
    ("DPO country text", _set("US", "data_processing_options_country"),
     "data.0.data_processing_options_country: Must be a non-negative integer"),
    ("app without app_data", _set("app", "action_source"),
     "data.0.app_data: Missing data for required field (action_source app)"),
]


@pytest.mark.parametrize(("name", "mutate", "expected"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_refuses_with_a_field_named_answer(
    name: str, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    ev = web_event()
    mutate(ev)
    verdict = judge(params(ev), T0)
    assert verdict.errors and verdict.errors[0].startswith(expected), verdict.errors
    err = verdict.error
    assert err is not None and err.http_status == 400 and err.code == 100
    assert err.message == "Invalid parameter" and err.is_transient is False
    assert err.user_msg is not None and err.user_msg.startswith(expected)
    if name == "Purchase without value":
        assert (err.subcode, err.user_title) == (2804009, "Missing Value for Purchase Event")
    else:
        assert (err.subcode, err.user_title) == (2804019, "Invalid Parameter")


def test_no_refusal_echoes_the_personal_data_it_refuses() -> None:
    ev = web_event()
    ev["user_data"].update(em="alice@example.com", ph="+16505551212", fn="Alice")
    verdict = judge(params(ev), T0)
    assert len(verdict.errors) == 3
    text = orjson.dumps(verdict.errors).decode() + str(verdict.error)
    assert "alice" not in text.lower() and "6505551212" not in text


def test_one_event_older_than_7_days_refuses_the_whole_request_with_2804003() -> None:
    old = web_event(event_id="old", event_time=T0 - 7 * DAY - 1)
    verdict = judge(params(web_event(), old, web_event(event_id="x")), T0)
    err = verdict.error
    assert err is not None and (err.code, err.subcode) == (100, 2804003)
    assert err.user_title == "Event Timestamp Too Old"
    assert err.user_msg is not None and "within 7 days" in err.user_msg
    assert verdict.errors == ["data.1.event_time: more than 7 days before the request"]
    # Exactly 7 days is still inside; a physical store has 62.
    assert judge(params(web_event(event_time=T0 - 7 * DAY)), T0).error is None
    store = web_event(action_source="physical_store", event_time=T0 - 30 * DAY)
    assert judge(params(store), T0).error is None
    store["event_time"] = T0 - 63 * DAY
    err = judge(params(store), T0).error
    assert err is not None and err.subcode == 2804003


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ({"data": None}, "(#100) param data must be an array."),
        ({"data": "not json"}, "(#100) param data must be an array (a JSON-encoded array in a"),
        ({"data": "{}"}, "(#100) param data must be an array."),
        ({"data": []}, "(#100) param data must contain at least 1 event."),
        ({"data": [web_event()] * 1001}, "(#100) param data must contain at most 1000 events."),
        ({"test_event_code": 12345}, "(#100) param test_event_code must be a string."),
    ],
)
def test_request_level_problems_answer_graphs_parameter_errors(
    top: dict[str, Any], message: str
) -> None:
    p = params(**top)
    err = judge(p, T0).error
    assert err is not None and (err.http_status, err.code, err.subcode) == (400, 100, None)
    assert err.message.startswith(message)


def test_missing_data_and_1000_events_limits() -> None:
    err = judge({"test_event_code": "T"}, T0).error
    assert err is not None and err.message == "(#100) The parameter data is required"
    batch = [web_event(event_id=f"o{i}") for i in range(1000)]
    assert judge({"data": batch}, T0).error is None


def test_empty_values_are_not_given_and_ldu_with_country_and_state_is_valid() -> None:
    ev = web_event(data_processing_options=["LDU"], data_processing_options_country=1,
                   data_processing_options_state=1000)
    ev["user_data"].update(fn="", ln=[], em=EM)  # one digest, not a list: also Meta's form
    assert judge(params(ev), T0).error is None


def test_parameter_builder_appendix_and_server_built_fbc_are_valid() -> None:
    ev = web_event()
    ev["user_data"].update(fbc=FBC + ".AQIAAQMC", fbp=FBP + ".Ag")
    assert judge(params(ev), T0).error is None


def test_dpo_at_the_top_level_is_noted() -> None:
    verdict = judge(params(data_processing_options=["LDU"]), T0)
    assert verdict.error is None
    assert "data_processing_options: at the request's top level" in verdict.notices[0]


# --- the emulator's answers: encodings, tokens, codes, dedup (no network) -----------------


def emulator(**kw: Any) -> MetaEmulator:
    return MetaEmulator(access_tokens=[TOKEN], pixel_ids=[PIXEL], clock=FakeClock(T0), **kw)


async def post(
    emu: MetaEmulator,
    body: bytes = b"",
    content_type: str | None = "application/json",
    query: str = f"access_token={TOKEN}",
    authorization: str | None = None,
    version: str = "v25.0",
    pixel: str = PIXEL,
) -> tuple[Reply, dict[str, Any]]:
    reply = await emu.handle_events(version, pixel, query, authorization, content_type, body)
    return reply, orjson.loads(reply.body)


def json_body(**top: Any) -> bytes:
    return orjson.dumps(params(**top))


def form_body(per_event_strings: bool, **extra: str) -> bytes:
    events: list[Any] = [web_event()]
    if per_event_strings:  # Meta's Python SDK JSON-encodes each event inside the array
        events = [orjson.dumps(e).decode() for e in events]
    return urlencode({"data": orjson.dumps(events).decode(), "test_event_code": "TEST12345",
                      **extra}).encode()


def multipart_body(boundary: str) -> bytes:
    parts = [("data", orjson.dumps([web_event()]).decode()), ("test_event_code", "TEST12345"),
             ("access_token", TOKEN)]
    chunks = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in parts
    ]
    return ("".join(chunks) + f"--{boundary}--\r\n").encode()


async def test_success_answer_is_metas_shape() -> None:
    emu = emulator()
    reply, answer = await post(emu, json_body())
    assert reply.http_status == 200
    assert set(answer) == {"events_received", "messages", "fbtrace_id"}
    assert answer["events_received"] == 1 and answer["messages"] == []
    assert len(answer["fbtrace_id"]) == 23
    assert reply.headers["x-fb-trace-id"] == answer["fbtrace_id"]
    log = emu.requests[-1]
    assert (log.encoding, log.token_in, log.test_event_code) == ("json", "query", "TEST12345")
    [ev] = emu.find_events(test_event_code="TEST12345")
    assert ev["_pixel_id"] == PIXEL and ev["_fbtrace_id"] == answer["fbtrace_id"]


@pytest.mark.parametrize(
    ("content_type", "body", "query", "authorization", "encoding", "token_in"),
    [
        ("application/json", json_body(), f"access_token={TOKEN}", None, "json", "query"),
        ("application/json", json_body(access_token=TOKEN), "", None, "json", "body"),
        ("application/json; charset=utf-8", json_body(), "", f"Bearer {TOKEN}", "json", "bearer"),
        ("application/x-www-form-urlencoded", form_body(False), f"access_token={TOKEN}", None,
         "form", "query"),
        ("application/x-www-form-urlencoded", form_body(True, access_token=TOKEN), "", None,
         "form", "body"),
        ("application/x-www-form-urlencoded", form_body(True), "", f"Bearer {TOKEN}", "form",
         "bearer"),
        ("multipart/form-data; boundary=XyZ", multipart_body("XyZ"), "", None, "multipart",
         "body"),
    ],
    ids=["json-query", "json-field", "json-bearer", "form-query", "sdk-form-field",
         "sdk-form-bearer", "multipart-field"],
)
async def test_every_encoding_and_token_placement_is_accepted(
    content_type: str, body: bytes, query: str, authorization: str | None, encoding: str,
    token_in: str,
) -> None:
    emu = emulator()
    reply, answer = await post(emu, body, content_type, query, authorization)
    assert reply.http_status == 200, answer
    assert answer["events_received"] == 1
    log = emu.requests[-1]
    assert (log.encoding, log.token_in, log.test_event_code) == (encoding, token_in, "TEST12345")
    assert emu.events[0]["user_data"]["em"] == [EM]


async def test_token_errors() -> None:
    emu = emulator()
    reply, answer = await post(emu, json_body(), query="")
    assert reply.http_status == 400
    assert answer["error"]["code"] == 104 and answer["error"]["type"] == "OAuthException"
    reply, answer = await post(emu, json_body(), query="access_token=wrong")
    assert (reply.http_status, answer["error"]["code"]) == (400, 190)
    assert "error_subcode" not in answer["error"]
    assert reply.headers["www-authenticate"].startswith('OAuth "Facebook Platform"')
    # TikTok's header is not Meta's: an Access-Token header leaves the request without a token.
    reply, answer = await post(emu, json_body(), query="", authorization=f"Basic {TOKEN}")
    assert answer["error"]["code"] == 104
    emu.faults.update({"revoked_tokens": [TOKEN]})
    reply, answer = await post(emu, json_body())
    assert (answer["error"]["code"], answer["error"]["error_subcode"]) == (190, 460)
    assert emu.events == []


async def test_unknown_pixel_version_and_body_errors() -> None:
    emu = emulator()
    _, answer = await post(emu, json_body(), pixel="999999999999999")
    assert (answer["error"]["code"], answer["error"]["error_subcode"]) == (100, 33)
    assert answer["error"]["type"] == "GraphMethodException"
    _, answer = await post(emu, json_body(), version="v17.0")
    assert answer["error"]["code"] == 2635
    _, answer = await post(emu, json_body(), version="25.0")
    assert answer["error"]["code"] == 2500
    for version in ("v23.0", "v24.0", "v26.0", "v27.0"):
        reply, _ = await post(emu, json_body(), version=version)
        assert reply.http_status == 200, version
    _, answer = await post(emu, b"{not json")
    assert answer["error"]["message"] == "(#100) body: Invalid JSON"
    _, answer = await post(emu, b"data=[]", content_type="text/plain")
    assert answer["error"]["code"] == 100 and "Content-Type" in answer["error"]["message"]


async def test_a_refused_request_records_nothing_and_logs_every_problem() -> None:
    emu = emulator()
    bad = web_event(event_id="b")
    del bad["event_source_url"]
    reply, answer = await post(emu, orjson.dumps(params(web_event(), bad)))
    assert reply.http_status == 400
    assert answer["error"]["error_user_msg"].startswith("data.1.event_source_url")
    assert emu.events == [] and emu.requests[-1].errors == [
        "data.1.event_source_url: Missing data for required field (action_source website)"
    ]


async def test_duplicates_within_48_hours_are_counted_but_not_recorded() -> None:
    clock = FakeClock(T0)
    emu = MetaEmulator(access_tokens=[TOKEN], clock=clock)
    first = web_event()
    _, answer = await post(emu, orjson.dumps(params(first, web_event(event_name="AddToCart"))))
    assert answer["events_received"] == 2
    clock.advance(47 * 3600)
    repeat = web_event(event_time=int(clock.now()) - 60)
    _, answer = await post(emu, orjson.dumps(params(repeat)))
    assert answer["events_received"] == 1  # Meta counts it; it keeps only the first
    assert (emu.requests[-1].recorded, emu.requests[-1].duplicates) == (0, 1)
    other_pixel = await post(emu, orjson.dumps(params(repeat)), pixel="543210987654321")
    assert other_pixel[1]["events_received"] == 1 and emu.requests[-1].recorded == 1
    clock.advance(2 * 3600)  # 49 h after the first copy: a new event again
    repeat["event_time"] = int(clock.now()) - 60
    await post(emu, orjson.dumps(params(repeat)))
    assert emu.requests[-1].recorded == 1
    assert emu.stats()["duplicates"] == 1 and len(emu.find_events(event_name="Purchase")) == 3


@pytest.mark.parametrize(
    ("changes", "status", "code", "subcode", "transient"),
    [
        ({"transient_rate": 1.0}, 500, 2, None, True),
        ({"unknown_error_rate": 1.0}, 500, 1, 99, True),
        ({"rate_limit_rate": 1.0}, 400, 17, 2446079, True),
        ({"rate_limit_rate": 1.0, "rate_limit_code": 4}, 400, 4, None, True),
        ({"rate_limit_rate": 1.0, "rate_limit_code": 613}, 400, 613, 1487742, True),
        ({"setup_error_code": 10}, 400, 10, None, None),
        ({"setup_error_code": 190}, 400, 190, 460, None),
    ],
)
async def test_injected_graph_errors(
    changes: dict[str, Any], status: int, code: int, subcode: int | None, transient: bool | None
) -> None:
    emu = emulator()
    emu.faults.update(changes)
    reply, answer = await post(emu, json_body())
    err = answer["error"]
    assert (reply.http_status, err["code"], err.get("error_subcode")) == (status, code, subcode)
    assert err.get("is_transient") == transient and err["fbtrace_id"]
    assert emu.events == []


async def test_injected_5xx_and_reject_event() -> None:
    emu = emulator()
    emu.faults.update({"http_5xx_rate": 1.0})
    reply = await emu.handle_events("v25.0", PIXEL, f"access_token={TOKEN}", None,
                                    "application/json", json_body())
    assert reply.http_status == 503 and reply.content_type == "text/html"
    emu.reset()
    emu.faults.update({"reject_event": "Purchase"})
    _, answer = await post(emu, json_body())
    assert answer["error"]["error_user_msg"] == (
        "data.0.event_name: Invalid value (rejected by fault)"
    )


def test_fault_updates_are_validated_all_or_nothing() -> None:
    faults = MetaFaults()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"transient_rate": 2}, "transient_rate"),
        ({"rate_limit_code": 190}, "rate_limit_code"),
        ({"setup_error_code": 12345}, "setup_error_code"),
        ({"revoked_tokens": "tok"}, "revoked_tokens"),
        ({"hang": 1}, "hang"),
        ({"nope": 1}, "nope"),
    ]
    for bad, field in cases:
        with pytest.raises(ValueError, match=f"^{field}: "):
            faults.update({"latency_ms": 5, **bad})
        assert faults.latency_ms == 0.0


def test_every_injectable_error_is_a_graph_error_object() -> None:
    for code, err in g.INJECTABLE.items():
        body = err.body("TRACE")["error"]
        assert body["code"] == code and body["fbtrace_id"] == "TRACE"
        assert body["message"] and body["type"] == "OAuthException"

