"""classify(): HTTP status and TikTok body codes -> delivered / retry / permanent / setup."""

from __future__ import annotations

import orjson
import pytest

from pixelrelay.destinations.base import HttpResponse, Outcome, OutcomeKind
from pixelrelay.destinations.tiktok.codes import classify

D, R, P, S = OutcomeKind.DELIVERED, OutcomeKind.RETRY, OutcomeKind.PERMANENT, OutcomeKind.SETUP


def body(code: object, message: object = "m", request_id: object = "req-1") -> HttpResponse:
    return HttpResponse(200, orjson.dumps({"code": code, "message": message,
                                           "request_id": request_id, "data": {}}))


@pytest.mark.parametrize(("code", "kind"), [
    (0, D), (20001, D),
    (40100, R), (40016, R), (40133, R), (40132, R), (40202, R), (50000, R), (50002, R),
    (51305, R), (60001, R),
    (40001, S), (40102, S), (40104, S), (40105, S), (40106, S), (40118, S), (40119, S),
    (40125, S), (41000, S),
    (40000, P), (40002, P), (40006, P), (40007, P), (40008, P), (40051, P), (49999, P),
    (50001, R), (12345, R), (-1, R),  # unknown codes: transient rather than lost
])
def test_body_codes(code: int, kind: OutcomeKind) -> None:
    assert classify(body(code)) == Outcome(kind, code=code, message="m", request_id="req-1")


def test_odd_message_and_request_id_types_are_dropped() -> None:
    assert classify(body(0, message=None, request_id=5)) == Outcome(D, code=0)


@pytest.mark.parametrize("resp", [
    HttpResponse(None, error="timeout"),
    HttpResponse(500), HttpResponse(502), HttpResponse(503), HttpResponse(429),
    HttpResponse(200, b"<html>gateway</html>"), HttpResponse(200, b""),
    HttpResponse(200, b"[]"), HttpResponse(200, b'{"code":"0"}'),
    HttpResponse(200, b'{"code":true}'), HttpResponse(200, b'{"message":"OK"}'),
])
def test_retry_without_a_verdict(resp: HttpResponse) -> None:
    out = classify(resp)
    assert out.kind is R and out.code is None and out.message


@pytest.mark.parametrize(("status", "hint"), [
    (404, "check api_url"), (401, "access_token"), (403, "access_token"),
    (400, "check api_url and the access_token"), (301, "check api_url"),
])
def test_other_http_statuses_need_setup(status: int, hint: str) -> None:
    out = classify(HttpResponse(status, b"not found"))
    assert out.kind is S and out.message is not None
    assert out.message.startswith(f"HTTP {status}: ") and hint in out.message


def test_network_error_message_is_kept() -> None:
    assert classify(HttpResponse(None, error="connection refused")).message == "connection refused"
    assert classify(HttpResponse(None)).message == "no HTTP response"
