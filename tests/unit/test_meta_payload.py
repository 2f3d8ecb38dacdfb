"""Meta server events and request bodies: the shapes of Meta's documented example, the
required fields, Limited Data Use, the 1,000-event and 7-day limits, the URL and the token."""

from __future__ import annotations

import orjson
import pytest

from pixelrelay.destinations.meta.hashing import MetaUserInput, hash_user
from pixelrelay.destinations.meta.payload import (
    AGE_MARGIN_S,
    DAY,
    MAX_BATCH,
    Item,
    action_source,
    age_problem,
    build_body,
    build_event,
    custom_data,
    encode_event,
    event_problem,
    events_url,
    request_headers,
    user_data,
    within_window,
)

EM = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
PH = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
FBC = "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
FBP = "fb.1.1596403881668.1116446470"

# meta-capi.md §1.6, Meta's minimal web example (shape from Meta's docs, SDK and Segment).
DOC_EXAMPLE = orjson.loads(b"""
{"data":[{"event_name":"Purchase","event_time":1776943380,"event_id":"order_10492",
  "action_source":"website","event_source_url":"https://shop.example/thanks",
  "user_data":{"em":["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"],
               "ph":["e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"],
               "external_id":["cust_34982"],
               "client_ip_address":"203.0.113.42","client_user_agent":"Mozilla/5.0 ...",
               "fbc":"fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk",
               "fbp":"fb.1.1596403881668.1116446470"},
  "custom_data":{"currency":"EUR","value":129.95,"order_id":"10492","content_type":"product",
                 "contents":[{"id":"SKU-481","quantity":1,"item_price":129.95}]},
  "data_processing_options":[]}],
 "test_event_code":"TEST12345","partner_agent":"pixelrelay-0.x"}
""")


def purchase_event(**overrides: object) -> dict[str, object]:
    hashed = hash_user(MetaUserInput(emails=("John_Smith@gmail.com",),
                                     phones=("+1 (650) 555-1212",))).user_data
    # The example's external_id is the sender's own value, sent as it is (§1.4: unhashed OK).
    ud = user_data({**hashed, "external_id": ["cust_34982"]},
                   client_ip_address="203.0.113.42", client_user_agent="Mozilla/5.0 ...",
                   fbc=FBC, fbp=FBP)
    cd = custom_data(value=129.95, currency="eur", order_id="10492", content_type="product",
                     contents=[Item("SKU-481", quantity=1, item_price=129.95)])
    args: dict[str, object] = dict(
        event_name="Purchase", event_time=1776943380, event_id="order_10492",
        action_source="website", event_source_url="https://shop.example/thanks",
        user_data=ud, custom_data=cd)
    args.update(overrides)
    return build_event(**args)  # type: ignore[arg-type]


def test_event_matches_metas_documented_example() -> None:
    body = orjson.loads(build_body([encode_event(purchase_event())],
                                   test_event_code="TEST12345",
                                   partner_agent="pixelrelay-0.x"))
    expected = orjson.loads(orjson.dumps(DOC_EXAMPLE))
    # Without LDU we leave data_processing_options out, which Meta reads as [] (no LDU).
    del expected["data"][0]["data_processing_options"]
    assert body == expected
    assert body["data"][0]["user_data"]["em"] == [EM]
    assert body["data"][0]["user_data"]["ph"] == [PH]


def test_keys_in_a_stable_order_and_one_input_one_body() -> None:
    a, b = encode_event(purchase_event()), encode_event(purchase_event())
    assert a == b
    ev = orjson.loads(a)
    assert list(ev) == ["event_name", "event_time", "event_id", "action_source",
                        "event_source_url", "user_data", "custom_data"]
    assert list(ev["user_data"]) == ["em", "ph", "external_id", "client_ip_address",
                                     "client_user_agent", "fbc", "fbp"]


def test_fbc_and_fbp_go_untouched_and_unhashed() -> None:
    ud = user_data({}, fbc=FBC, fbp="fb.1.1596403881668.1116446470.AQIAAQMC")
    assert ud == {"fbc": FBC, "fbp": "fb.1.1596403881668.1116446470.AQIAAQMC"}


def test_limited_data_use() -> None:
    ev = purchase_event(limited_data_use=True)
    assert ev["data_processing_options"] == ["LDU"]
    assert ev["data_processing_options_country"] == 0  # 0: Meta geolocates
    assert ev["data_processing_options_state"] == 0
    ca = purchase_event(limited_data_use=True, ldu_country=1, ldu_state=1000)
    assert (ca["data_processing_options_country"], ca["data_processing_options_state"]) == \
        (1, 1000)
    assert "data_processing_options" not in purchase_event()


def test_test_event_code_is_top_level_only() -> None:
    body = orjson.loads(build_body([b'{"event_name":"Lead"}'], test_event_code="TEST1"))
    assert body == {"data": [{"event_name": "Lead"}], "test_event_code": "TEST1"}
    assert orjson.loads(build_body([b"{}"])) == {"data": [{}]}


def test_batch_limits() -> None:
    body = build_body([b"{}"] * MAX_BATCH)
    assert len(orjson.loads(body)["data"]) == 1000
    with pytest.raises(ValueError, match="1 to 1000"):
        build_body([b"{}"] * (MAX_BATCH + 1))
    with pytest.raises(ValueError, match="data"):
        build_body([])


def test_custom_data_uses_metas_item_keys() -> None:
    cd = custom_data(value=10, currency=" usd ", contents=[Item("A", 2, 5.0, title="Tee")],
                     content_ids=["A"], num_items=2, search_string="tee", content_type="")
    assert cd == {"value": 10, "currency": "USD",
                  "contents": [{"id": "A", "quantity": 2, "item_price": 5.0, "title": "Tee"}],
                  "content_ids": ["A"], "num_items": 2, "search_string": "tee"}
    assert custom_data() == {}
    assert "custom_data" not in purchase_event(custom_data={})


@pytest.mark.parametrize(("source", "override", "expected"), [
    ("web", None, "website"), ("app", None, "app"), ("offline", None, "physical_store"),
    ("crm", None, "system_generated"), ("kiosk", None, "other"),
    ("web", "phone_call", "phone_call"), ("web", "nonsense", "website"),
    ("website", None, "website"), ("chat", None, "chat"),
])
def test_action_source(source: str, override: str | None, expected: str) -> None:
    assert action_source(source, override) == expected


def test_build_event_refuses_an_unknown_action_source() -> None:
    with pytest.raises(ValueError, match="action_source"):
        purchase_event(action_source="web")


def test_event_problem_names_what_meta_requires() -> None:
    assert event_problem(purchase_event()) is None
    assert event_problem(purchase_event(event_source_url=None)) == \
        "event_source_url: required for website events"
    ud = user_data({"em": [EM]})
    assert event_problem(purchase_event(user_data=ud)) == \
        "user_data.client_user_agent: required for website events"
    # Only website events need the URL and the user agent.
    assert event_problem(purchase_event(user_data=ud, action_source="physical_store",
                                        event_source_url=None)) is None
    assert event_problem(purchase_event(user_data={})) is not None
    app = purchase_event(action_source="app", event_source_url=None)
    assert event_problem(app) == "app_data: required for app events"
    flags = {"advertiser_tracking_enabled": 1, "application_tracking_enabled": 1}
    with_app = purchase_event(action_source="app", app_data=flags)
    assert event_problem(with_app) is None
    assert with_app["app_data"] == flags
    no_value = custom_data(currency="EUR")
    assert event_problem(purchase_event(custom_data=no_value)) == \
        "custom_data: a Purchase needs value and currency"
    assert event_problem(purchase_event(event_name="Lead", custom_data=no_value)) is None


def test_seven_day_window() -> None:
    now = 1_800_000_000.0
    assert within_window(int(now), now)
    assert within_window(int(now - 7 * DAY + AGE_MARGIN_S), now)
    too_old = age_problem(int(now - 7 * DAY + AGE_MARGIN_S - 1), now)
    assert too_old is not None and "7 days" in too_old
    assert not within_window(int(now - 8 * DAY), now)
    # Inside the 7 days by our clock, but not by Meta's once the request has travelled.
    assert not within_window(int(now - 7 * DAY + 30), now)
    assert within_window(int(now - 30 * DAY), now, "physical_store")  # 62 days offline
    assert not within_window(int(now - 63 * DAY), now, "physical_store")
    assert within_window(int(now + 60), now)
    assert age_problem(int(now + 3600), now) == "event_time: in the future"


def test_events_url_and_token() -> None:
    assert events_url("https://graph.facebook.com", "v25.0", "123456789012345") == \
        "https://graph.facebook.com/v25.0/123456789012345/events"
    assert events_url("http://127.0.0.1:9000/", "25.0", "42") == \
        "http://127.0.0.1:9000/v25.0/42/events"
    headers = request_headers("EAAB-secret")
    assert headers == {"Authorization": "Bearer EAAB-secret",
                       "Content-Type": "application/json"}
    assert "secret" not in events_url("https://graph.facebook.com", "v25.0", "1")
