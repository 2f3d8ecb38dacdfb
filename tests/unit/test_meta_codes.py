"""Meta answers classified: success, Graph API errors by code / subcode / is_transient, HTTP
faults; the fbtrace_id rides along as the request id."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pixelrelay.destinations.base import HttpResponse, OutcomeKind
from pixelrelay.destinations.meta.codes import classify, read_answer

TRACE = "A6UyEgg_HdoiRX9duxcBOjb"


def error(code: int, subcode: int | None = None, status: int = 400,
          **extra: Any) -> HttpResponse:
    err: dict[str, Any] = {"message": "Invalid parameter", "type": "OAuthException",
                           "code": code, "fbtrace_id": TRACE, **extra}
    if subcode is not None:
        err["error_subcode"] = subcode
    return HttpResponse(status, orjson.dumps({"error": err}))


def test_success() -> None:
    out = classify(HttpResponse(200, orjson.dumps(
        {"events_received": 3, "messages": [], "fbtrace_id": TRACE})))
    assert out.kind is OutcomeKind.DELIVERED
    assert out.request_id == TRACE
    assert out.message is None
    answer = read_answer(HttpResponse(200, b'{"events_received":3,"messages":["w"]}'))
    assert answer.events_received == 3 and answer.messages == ("w",)


def test_success_warnings_are_kept() -> None:
    out = classify(HttpResponse(200, b'{"events_received":1,"messages":["deprecated x"]}'))
    assert out.kind is OutcomeKind.DELIVERED and out.message == "deprecated x"


def test_timestamp_too_old_is_permanent_with_its_subcode_and_trace() -> None:
    # meta-capi.md §5, Meta's error object for an event older than 7 days.
    resp = error(100, 2804003, is_transient=False,
                 error_user_title="Event Timestamp Too Old",
                 error_user_msg="The timestamp for this event is too far in the past.")
    out = classify(resp)
    assert out.kind is OutcomeKind.PERMANENT
    assert out.code == 100
    assert out.request_id == TRACE
    assert out.message == ("(#100) Invalid parameter: Event Timestamp Too Old: The timestamp "
                           "for this event is too far in the past. [subcode 2804003]")
    a = read_answer(resp)
    assert (a.code, a.error_subcode, a.is_transient, a.fbtrace_id) == \
        (100, 2804003, False, TRACE)


@pytest.mark.parametrize("code", [1, 2, 4, 17, 32, 341, 613, 21009, 80003])
def test_transient_codes_retry(code: int) -> None:
    assert classify(error(code)).kind is OutcomeKind.RETRY


def test_is_transient_wins() -> None:
    assert classify(error(100, is_transient=True)).kind is OutcomeKind.RETRY


@pytest.mark.parametrize(("code", "subcode"), [
    (190, 460), (190, None), (102, None), (10, None), (200, None), (250, None), (299, None),
    (3, None), (2635, None), (368, None), (100, 33),
])
def test_token_and_permission_codes_pause_the_destination(code: int,
                                                          subcode: int | None) -> None:
    assert classify(error(code, subcode)).kind is OutcomeKind.SETUP


@pytest.mark.parametrize(("code", "subcode"), [
    (100, 2804009), (100, 2804003), (100, None), (300, None), (12345, None)])
def test_invalid_requests_are_permanent(code: int, subcode: int | None) -> None:
    assert classify(error(code, subcode)).kind is OutcomeKind.PERMANENT


def test_unknown_code_on_a_server_fault_retries() -> None:
    assert classify(error(12345, status=500)).kind is OutcomeKind.RETRY


@pytest.mark.parametrize(("resp", "kind"), [
    (HttpResponse(None, error="ConnectError: refused"), OutcomeKind.RETRY),
    (HttpResponse(None, error="timeout: ReadTimeout"), OutcomeKind.RETRY),
    (HttpResponse(502, b"<html>Bad Gateway</html>"), OutcomeKind.RETRY),
    (HttpResponse(503, b""), OutcomeKind.RETRY),
    (HttpResponse(429, b""), OutcomeKind.RETRY),
    (HttpResponse(200, b"<html>"), OutcomeKind.RETRY),
    (HttpResponse(200, b'{"ok":true}'), OutcomeKind.RETRY),
    (HttpResponse(401, b""), OutcomeKind.SETUP),
    (HttpResponse(404, b"Not Found"), OutcomeKind.SETUP),
    (HttpResponse(413, b""), OutcomeKind.PERMANENT),
])
def test_http_faults(resp: HttpResponse, kind: OutcomeKind) -> None:
    assert classify(resp).kind is kind


def test_network_error_keeps_its_text() -> None:
    out = classify(HttpResponse(None, error="ConnectError: refused"))
    assert out.message == "ConnectError: refused" and out.code is None


def test_type_is_never_what_decides() -> None:
    # OAuthException on a throttling code still retries; on a validation code it does not.
    assert classify(error(17, type="OAuthException")).kind is OutcomeKind.RETRY
    assert classify(error(100, 2804009, type="GraphMethodException")).kind is \
        OutcomeKind.PERMANENT


def test_bool_is_not_a_code() -> None:
    out = classify(HttpResponse(400, b'{"error":{"code":true,"message":"x"}}'))
    assert out.code is None and out.kind is OutcomeKind.PERMANENT
