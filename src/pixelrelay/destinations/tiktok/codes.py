"""Classify a TikTok /event/track/ answer as delivered, retry, permanent or setup."""

from __future__ import annotations

from typing import TypeGuard

import orjson

from pixelrelay.destinations.base import HttpResponse, Outcome, OutcomeKind

DELIVERED_CODES = frozenset({0, 20001})  # 20001 = partially successful; TikTok gives no detail
RETRY_CODES = frozenset({
    40100, 40016, 40133, 40132,  # throttling (app, advertiser, pixel_code)
    40202,  # write conflict: "retry may resolve"
    50000, 50002, 51305,  # TikTok-side errors
    60001,  # maintenance
})
SETUP_CODES = frozenset({
    40001,  # no permission on the pixel
    40102, 40104, 40105,  # access token expired / empty / invalid
    40106, 40118, 40119, 40125,  # user, allow-list, company, developer permission
    41000,  # client IP in a banned country
})

# Every code classify() knows by name, and 40000/40002 (bad request, bad parameter).
KNOWN_CODES = DELIVERED_CODES | RETRY_CODES | SETUP_CODES | {40000, 40002}
_HTTP_SETUP = {
    401: "check the destination's access_token",
    403: "check the access_token and that it may send events for this pixel",
    404: "check api_url: give only the host (e.g. https://business-api.tiktok.com); "
         "pixelrelay adds /open_api/v1.3/event/track/",
}


def classify(resp: HttpResponse) -> Outcome:
    """TikTok answers HTTP 200 with the verdict in the body `code`; other statuses are ours."""
    if resp.status is None or resp.error is not None:
        return Outcome(OutcomeKind.RETRY, message=resp.error or "no HTTP response")
    status = resp.status
    if status >= 500 or status == 429:
        return Outcome(OutcomeKind.RETRY, message=f"HTTP {status}")
    if status != 200:
        hint = _HTTP_SETUP.get(status, "check api_url and the access_token")
        return Outcome(OutcomeKind.SETUP, message=f"HTTP {status}: {hint}")
    try:
        body = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not _is_int(code := body.get("code")):
        # A proxy or a truncated answer: the request may not have been seen, so try again.
        return Outcome(OutcomeKind.RETRY, message="HTTP 200 with an unreadable body")
    message = body.get("message")
    request_id = body.get("request_id")
    return Outcome(_kind(code), code=code,
                   message=message if isinstance(message, str) else None,
                   request_id=request_id if isinstance(request_id, str) else None)


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _kind(code: int) -> OutcomeKind:
    if code in DELIVERED_CODES:
        return OutcomeKind.DELIVERED
    if code in RETRY_CODES:
        return OutcomeKind.RETRY
    if code in SETUP_CODES:
        return OutcomeKind.SETUP
    if 40000 <= code < 50000:
        return OutcomeKind.PERMANENT
    return OutcomeKind.RETRY  # unknown: assume transient rather than lose the events
