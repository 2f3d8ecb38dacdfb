"""The emulator's contract checks: each TikTok rule refuses what it should and nothing more."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pixelrelay.emulator import Emulator, Faults, create_emulator_app, validate_request
from pixelrelay.emulator.contract import check_access_token, is_json_content_type
from pixelrelay.emulator.faults import FaultDice

SHA = hashlib.sha256(b"alice@example.com").hexdigest()
T0 = 1_776_943_380


def web_event(**overrides: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event": "Purchase",
        "event_time": T0,
        "event_id": "order_42",
        "user": {
            "email": [SHA],
            "phone": [SHA],
            "external_id": [SHA],
            "ttclid": "E.C.P.abc",
            "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0",
            "locale": "en-US",
        },
        "page": {
            "url": "https://shop.example/thanks?ttclid=x",
            "referrer": "https://shop.example/",
        },
        "properties": {
            "contents": [
                {"content_id": "SKU1", "content_name": "Shirt", "price": 10, "quantity": 2}
            ],
            "content_type": "product",
            "currency": "USD",
            "value": 20.5,
            "order_id": "42",
        },
        "limited_data_use": False,
    }
    ev.update(overrides)
    return ev


def body(*events: dict[str, Any], **top: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "event_source": "web",
        "event_source_id": "PIXEL1",
        "partner_name": "pixelrelay",
        "test_event_code": "TEST123",
        "data": list(events) or [web_event()],
    }
    b.update(top)
    return b


def test_full_web_event_is_valid() -> None:
    assert validate_request(body()) == []


def test_single_hash_string_and_unknown_keys_are_tolerated() -> None:
    ev = web_event(custom_key={"x": 1})
    ev["user"]["email"] = SHA
    ev["properties"]["gtm_version"] = "1"
    assert validate_request(body(ev, something_new=True)) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(b: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = b
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


_DELETE = object()

CASES = [
    ("event_source", "shop", "event_source: Must be one of"),
    ("event_source", _DELETE, "event_source: Missing data"),
    ("event_source_id", "", "event_source_id: Not a valid string"),
    ("event_source_id", 123, "event_source_id: Not a valid string"),
    ("test_event_code", 5, "test_event_code: Not a valid string"),
    ("data", [], "data: at least 1 event"),
    ("data", {"event": "x"}, "data: Not a valid list"),
    ("data.0.event", "", "data.0.event: Not a valid string"),
    ("data.0.event", _DELETE, "data.0.event: Missing data"),
    ("data.0.event_time", _DELETE, "data.0.event_time: Missing data"),
    ("data.0.event_time", float(T0), "data.0.event_time: Not a valid integer"),
    ("data.0.event_time", str(T0), "data.0.event_time: Not a valid integer"),
    ("data.0.event_time", T0 * 1000, "data.0.event_time: Must be Unix seconds"),
    ("data.0.event_time", True, "data.0.event_time: Not a valid integer"),
    ("data.0.event_id", 273196, "data.0.event_id: Invalid value for event_id: not a valid string."),
    ("data.0.event_id", "", "data.0.event_id: Must not be empty"),
    ("data.0.test_event_code", "TEST123", "data.0.test_event_code: Unknown field"),
    ("data.0.limited_data_use", "false", "data.0.limited_data_use: Not a valid boolean"),
    ("data.0.user", [SHA], "data.0.user: Not a valid object"),
    ("data.0.user.email", "alice@example.com", "data.0.user.email: Not a SHA-256"),
    ("data.0.user.phone", ["+12133734253"], "data.0.user.phone.0: Not a SHA-256"),
    ("data.0.user.external_id", [SHA.upper()], "data.0.user.external_id.0: Not a SHA-256"),
    ("data.0.user.email", [SHA, 7], "data.0.user.email.1: Not a valid string"),
    ("data.0.user.email", {"v": SHA}, "data.0.user.email: Not a valid string or list"),
    ("data.0.user.ttclid", 1, "data.0.user.ttclid: Not a valid string"),
    ("data.0.user.ip", None, "data.0.user.ip: Not a valid string"),
    ("data.0.user.user_agent", ["x"], "data.0.user.user_agent: Not a valid string"),
    ("data.0.page.url", 1, "data.0.page.url: Not a valid string"),
    ("data.0.page", "https://x", "data.0.page: Not a valid object"),
    ("data.0.properties.contents.0.content_id", 1, "contents.0.content_id: Not a valid string"),
    ("data.0.properties.contents.0.price", "10", "contents.0.price: Not a valid number"),
    ("data.0.properties.contents.0.quantity", 2.5, "contents.0.quantity: Not a valid integer"),
    ("data.0.properties.contents", {"content_id": "x"}, "properties.contents: Not a valid list"),
    ("data.0.properties.currency", "usd", "data.0.properties.currency: Must be an ISO 4217"),
    ("data.0.properties.currency", "EURO", "data.0.properties.currency: Must be an ISO 4217"),
    ("data.0.properties.value", "20", "data.0.properties.value: Not a valid number"),
    ("data.0.properties.value", True, "data.0.properties.value: Not a valid number"),
    ("data.0.properties.order_id", 42, "data.0.properties.order_id: Not a valid string"),
    ("data.0.properties.content_type", "sku", "data.0.properties.content_type: Must be one of"),
    ("data.0.user.first_name", "Alice", "data.0.user.first_name: Not a SHA-256"),
    ("data.0.user.zip_code", ["10115"], "data.0.user.zip_code.0: Not a SHA-256"),
    ("data.0.user.city", SHA, "data.0.user.city: Must not be hashed"),
    ("data.0.user.city", "New York", "data.0.user.city: Must be normalised"),
    ("data.0.user.country", 49, "data.0.user.country: Not a valid string"),
    ("data.0.user.att_status", "yes", "data.0.user.att_status: Must be one of"),
    ("data.0.ad", {"callback": 1}, "data.0.ad.callback: Not a valid string"),
    ("data.0.ad", {"is_retargeting": "no"}, "data.0.ad.is_retargeting: Not a valid boolean"),
    ("data.0.app", {"app_id": 343200656}, "data.0.app.app_id: Not a valid string"),
    ("data.0.lead", {"lead_id": 7}, "data.0.lead.lead_id: Not a valid string"),
    ("data.0.device", "iPhone", "data.0.device: Not a valid object"),
]


def test_blank_match_keys_mean_absent_as_segment_sends_them() -> None:
    ev = web_event()
    ev["user"].update(first_name="", last_name="", zip_code="", city="", state="",
                      country="", email=[])
    assert validate_request(body(ev)) == []


@pytest.mark.parametrize(("source", "part", "key"), [("crm", "lead", "lead_id"),
                                                     ("app", "app", "app_id")])
def test_crm_events_need_a_lead_id_and_app_events_an_app_id(source: str, part: str,
                                                           key: str) -> None:
    assert validate_request(body(web_event(), event_source=source)) == [
        f"data.0.{part}.{key}: Missing data for required field (event_source {source})"]
    assert validate_request(body(web_event(**{part: {key: "7403"}}),
                                 event_source=source)) == []


@pytest.mark.parametrize(("path", "value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_refuses_with_the_field_path(path: str, value: Any, expected: str) -> None:
    b = body()
    _set(path, value)(b)
    errors = validate_request(b)
    assert len(errors) == 1, errors
    assert expected in errors[0], errors


def test_body_must_be_an_object() -> None:
    assert validate_request([body()]) == ["body: Not a valid object"]


def test_error_names_the_failing_event_index() -> None:
    events = [web_event(event_id=f"e{i}") for i in range(5)]
    events[3]["properties"]["contents"][0]["content_id"] = 99
    assert validate_request(body(*events)) == [
        "data.3.properties.contents.0.content_id: Not a valid string"
    ]


def test_raw_email_is_refused_without_echoing_it() -> None:
    ev = web_event()
    ev["user"]["email"] = ["alice@example.com"]
    errors = validate_request(body(ev))
    assert errors and errors[0].startswith("data.0.user.email.0:")
    assert "alice" not in " ".join(errors)


def test_batch_size_limit_is_1000() -> None:
    assert validate_request(body(*[web_event(event_id=str(i)) for i in range(1000)])) == []
    too_many = body(*[web_event(event_id=str(i)) for i in range(1001)])
    assert validate_request(too_many) == ["data: at most 1000 events"]


def test_error_list_is_capped() -> None:
    events = [web_event(event_time="now") for _ in range(100)]
    assert len(validate_request(body(*events), max_errors=7)) == 7


def test_access_token_rules() -> None:
    allowed = frozenset({"tok"})
    assert check_access_token(None, allowed) == (
        40104,
        "Access token is null, set it in http header with key Access-Token",
    )
    assert check_access_token("  ", allowed) is not None
    assert check_access_token(" ", allowed)[0] == 40104  # type: ignore[index]
    assert check_access_token("other", allowed)[0] == 40105  # type: ignore[index]
    assert check_access_token("Bearer tok", allowed)[0] == 40105  # type: ignore[index]
    assert check_access_token("Bearer tok", frozenset())[0] == 40105  # type: ignore[index]
    assert check_access_token("tok", allowed) is None
    assert check_access_token("anything", frozenset()) is None


def test_content_type_must_be_json() -> None:
    assert is_json_content_type("application/json")
    assert is_json_content_type("Application/JSON; charset=utf-8")
    assert not is_json_content_type("text/plain")
    assert not is_json_content_type("application/x-www-form-urlencoded")
    assert not is_json_content_type(None)


def test_faults_update_is_validated_and_all_or_nothing() -> None:
    f = Faults()
    f.update({"http_5xx_rate": 0.5, "reject_event": "Lead", "setup_error_code": 40105})
    assert (f.http_5xx_rate, f.reject_event, f.setup_error_code) == (0.5, "Lead", 40105)
    for bad in ({"http_5xx_rate": 2}, {"latency_ms": -1}, {"nope": 1}, {"code_40100_rate": True}):
        with pytest.raises(ValueError):
            f.update({"latency_ms": 5, **bad})
        assert f.latency_ms == 0.0


def test_fault_dice_are_reproducible_and_independent_of_disabled_kinds() -> None:
    a, b = FaultDice(7), FaultDice(7)
    seq_a = [a.roll(0.5) for _ in range(50)]
    seq_b = []
    for _ in range(50):
        b.roll(0.0)  # a disabled fault kind must not consume randomness
        seq_b.append(b.roll(0.5))
    assert seq_a == seq_b
    assert 5 < sum(seq_a) < 45
    assert not any(FaultDice(1).roll(0.0) for _ in range(100))
    assert all(FaultDice(1).roll(1.0) for _ in range(100))


async def test_any_error_rejects_the_whole_request() -> None:
    emu = Emulator()
    events = [web_event(event_id=f"e{i}") for i in range(3)]
    events[2]["user"]["phone"] = "+12133734253"
    reply = await emu.handle_track("tok", "application/json", orjson.dumps(body(*events)))
    assert orjson.loads(reply.body)["code"] == 40002
    assert emu.events == []
    ok = copy.deepcopy(events[:2])
    reply = await emu.handle_track("tok", "application/json", orjson.dumps(body(*ok)))
    assert orjson.loads(reply.body)["code"] == 0
    assert [e["event_id"] for e in emu.events] == ["e0", "e1"]


async def test_reset_restores_the_seeded_fault_sequence() -> None:
    emu = Emulator(seed=5)
    ev = web_event()
    del ev["event_id"]  # no dedup: every accepted request answers 0
    raw = orjson.dumps(body(ev))

    async def run() -> list[int]:
        emu.faults.code_50000_rate = 0.5
        codes = []
        for _ in range(20):
            reply = await emu.handle_track("tok", "application/json", raw)
            codes.append(orjson.loads(reply.body)["code"])
        return codes

    first = await run()
    faults = emu.faults
    emu.reset()
    assert faults is emu.faults and faults == Faults()
    assert emu.events == [] and emu.requests == [] and emu.stats()["events"] == 0
    assert await run() == first
    assert set(first) == {0, 50000}


async def test_invalid_json_is_a_parameter_error() -> None:
    emu = Emulator()
    for raw in (b"", b"{not json", b"null", b"[]"):
        reply = await emu.handle_track("tok", "application/json", raw)
        assert orjson.loads(reply.body)["code"] == 40002, raw


async def test_missing_trailing_slash_is_404_and_other_methods_405() -> None:
    transport = httpx.ASGITransport(app=create_emulator_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://emu") as client:
        headers = {"Access-Token": "t"}
        ok = await client.post("/open_api/v1.3/event/track/", json=body(), headers=headers)
        assert ok.status_code == 200 and ok.json()["code"] == 0
        # A redirect would let a client with the classic missing-slash bug pass unnoticed.
        no_slash = await client.post("/open_api/v1.3/event/track", json=body(), headers=headers)
        assert no_slash.status_code == 404
        assert (await client.get("/open_api/v1.3/event/track/")).status_code == 405
        assert (await client.put("/open_api/v1.3/event/track/", json=body())).status_code == 405


async def test_works_mounted_under_a_prefix_as_in_sandbox_mode() -> None:
    emu = Emulator(access_tokens=["t"])
    outer = Starlette(routes=[Mount("/_emulator", app=create_emulator_app(emu))])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        headers = {"Access-Token": "t"}
        ok = await client.post(
            "/_emulator/open_api/v1.3/event/track/", json=body(), headers=headers
        )
        assert ok.json()["code"] == 0
        missing = await client.post("/_emulator/open_api/v1.3/event/track", json=body())
        assert missing.status_code == 404
        assert (await client.get("/_emulator/stats")).json()["events"] == 1
    assert emu.events[0]["_pixel_code"] == "PIXEL1"
