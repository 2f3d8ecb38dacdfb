"""check --send-test: never to a destination without a test_event_code; a valid TikTok body."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from pixelrelay.destinations import build_destination
from pixelrelay.emulator import validate_request
from pixelrelay.ops import OpsError
from pixelrelay.ops.send_test import REFUSAL, TEST_EVENT_ID, plan, probe_event
from pixelrelay.routing import route as route_of
from tests.conftest import make_settings

NOW = 1_776_943_380.0


def test_destinations_without_a_test_event_code_are_refused() -> None:
    s = make_settings(Path("x.db"), "http://127.0.0.1:9")
    test = dataclasses.replace(s.destinations[0], name="t", test_event_code="TEST1")
    s = dataclasses.replace(s, destinations=(s.destinations[0], test))
    assert [(d.name, why) for d, why in plan(s, None)] == [("tiktok", REFUSAL), ("t", None)]
    assert [d.name for d, _ in plan(s, "t")] == ["t"]
    with pytest.raises(OpsError, match="--destination"):
        plan(s, "nope")


def test_the_probe_passes_tiktoks_contract_with_the_code_at_the_top_level() -> None:
    s = make_settings(Path("x.db"), "http://127.0.0.1:9", test_event_code="TEST1")
    dest = build_destination(s.destinations[0])
    route = route_of(dest, probe_event(NOW))
    assert route.payload is not None
    body = orjson.loads(dest.build_request(route.batch_key, [route.payload]).body)
    assert validate_request(body) == []
    assert body["test_event_code"] == "TEST1"
    assert body["data"][0]["event"] == "ViewContent"
    assert body["data"][0]["event_id"] == TEST_EVENT_ID


def test_a_given_test_event_code_probes_one_destination_without_its_own_code() -> None:
    s = make_settings(Path("x.db"), "http://127.0.0.1:9")  # production: no test_event_code
    ((d, why),) = plan(s, None, test_event_code=" TEST9 ")
    assert (d.name, d.test_event_code, why) == ("tiktok", "TEST9", None)
    assert s.destinations[0].test_event_code == ""  # the settings themselves are untouched
    other = dataclasses.replace(s.destinations[0], name="other")
    two = dataclasses.replace(s, destinations=(s.destinations[0], other))
    with pytest.raises(OpsError, match="--destination"):
        plan(two, None, test_event_code="TEST9")  # a code belongs to one pixel
    assert [d.name for d, _ in plan(two, "other", test_event_code="TEST9")] == ["other"]
    with pytest.raises(OpsError, match="--test-event-code: is empty"):
        plan(s, None, test_event_code=" ")


def test_the_probe_passes_metas_contract_with_the_code_at_the_top_level() -> None:
    """--send-test works for every destination type: Meta's judge takes the probe, with the
    Test Events code at the request's top level."""
    from pixelrelay.destinations.meta.settings import meta_destination
    from pixelrelay.emulator.meta import judge
    from pixelrelay.secret import Secret

    dest = build_destination(meta_destination(name="m", access_token=Secret("t"),
                                              pixel_id="123456789012345",
                                              test_event_code="TEST55"))
    route = route_of(dest, probe_event(NOW))
    assert route.payload is not None, route.reason
    body = orjson.loads(dest.build_request(route.batch_key, [route.payload]).body)
    assert body["test_event_code"] == "TEST55"
    assert body["data"][0]["event_id"] == TEST_EVENT_ID
    verdict = judge({"data": body["data"], "test_event_code": body["test_event_code"]}, NOW)
    assert verdict.error is None and len(verdict.events) == 1, verdict
