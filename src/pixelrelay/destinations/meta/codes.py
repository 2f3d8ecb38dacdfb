"""Classify a Meta /{pixel_id}/events answer as delivered, retry, permanent or setup.

Meta answers 200 `{"events_received", "messages", "fbtrace_id"}`, or a 4xx/5xx carrying a
Graph API error object. Never classify by the error's `type` (often OAuthException even for
a bad parameter): by `code`, `error_subcode` and `is_transient`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from pixelrelay.destinations.base import HttpResponse, Outcome, OutcomeKind

RETRY_CODES = frozenset({
    1, 2,  # API unknown / service: temporary, downtime
    4, 17, 32, 341, 613,  # throttling: app, user, page, application limit, ad account
    21009,  # "the data set upload is temporarily not ready"
    80003, 80004,  # ad-account level rate limits
})
SETUP_CODES = frozenset({
    3,  # the app lacks the capability
    10,  # permission denied
    102, 190,  # session / access token expired, revoked or invalid
    # Blocked for policy violations: "temporary", but someone must look, and retrying
    # through the block would spend every event's retries; paused, the queue waits.
    368,
    2635,  # a deprecated API version: raise api_version
})
# Invalid parameter's subcode 33: the pixel / dataset id does not exist or the token may not
# use it: no event of this destination can go until the config changes.
SETUP_SUBCODES_100 = frozenset({33})
# Every code classify() knows by name (100: invalid parameter), for the metric's labels.
KNOWN_CODES = RETRY_CODES | SETUP_CODES | {100}

_HTTP_SETUP = {
    401: "check the destination's access_token",
    403: "check the access_token and that it may send events for this pixel_id",
    404: "check api_url (the host only, e.g. https://graph.facebook.com), api_version "
         "and pixel_id",
}


@dataclass(frozen=True, slots=True)
class MetaAnswer:
    """What Meta's answer says, as far as it could be read."""

    status: int | None
    events_received: int | None = None
    messages: tuple[str, ...] = ()
    code: int | None = None
    error_subcode: int | None = None
    is_transient: bool | None = None
    message: str | None = None  # error.message, with error_user_title / error_user_msg
    fbtrace_id: str | None = None


def read_answer(resp: HttpResponse) -> MetaAnswer:
    body = _json(resp.body)
    trace = _str(body.get("fbtrace_id"))
    err = body.get("error")
    if isinstance(err, dict):
        return MetaAnswer(
            status=resp.status,
            code=_int(err.get("code")),
            error_subcode=_int(err.get("error_subcode")),
            is_transient=t if isinstance(t := err.get("is_transient"), bool) else None,
            message=_error_text(err),
            fbtrace_id=_str(err.get("fbtrace_id")) or trace)
    msgs = body.get("messages")
    return MetaAnswer(
        status=resp.status,
        events_received=_int(body.get("events_received")),
        messages=tuple(str(m) for m in msgs) if isinstance(msgs, list) else (),
        fbtrace_id=trace)


def classify(resp: HttpResponse) -> Outcome:
    """The Outcome, with Meta's code, a message naming the subcode, and the fbtrace_id as
    request_id (log it with every attempt: Meta support asks for it)."""
    if resp.status is None or resp.error is not None:
        return Outcome(OutcomeKind.RETRY, message=resp.error or "no HTTP response")
    a = read_answer(resp)
    kind, message = _decide(resp.status, a)
    return Outcome(kind, code=a.code, message=message, request_id=a.fbtrace_id)


def _decide(status: int, a: MetaAnswer) -> tuple[OutcomeKind, str | None]:
    if a.code is None:
        if status == 200 and a.events_received is not None:
            return OutcomeKind.DELIVERED, "; ".join(a.messages) or None
        if status >= 500 or status in (408, 429):
            return OutcomeKind.RETRY, f"HTTP {status}"
        if status == 200:
            # A proxy or a truncated answer: the request may not have been seen; try again.
            return OutcomeKind.RETRY, "HTTP 200 with an unreadable body"
        if status in _HTTP_SETUP:
            return OutcomeKind.SETUP, f"HTTP {status}: {_HTTP_SETUP[status]}"
        return OutcomeKind.PERMANENT, f"HTTP {status} without a Graph API error"
    return _kind(status, a.code, a.error_subcode, a.is_transient), _describe(a)


def _kind(status: int, code: int, subcode: int | None,
          is_transient: bool | None) -> OutcomeKind:
    if is_transient is True or code in RETRY_CODES:
        return OutcomeKind.RETRY
    if code in SETUP_CODES or 200 <= code <= 299:
        return OutcomeKind.SETUP
    if code == 100:
        return OutcomeKind.SETUP if subcode in SETUP_SUBCODES_100 else OutcomeKind.PERMANENT
    if status >= 500:
        return OutcomeKind.RETRY  # an unknown code on a server fault: assume it passes
    return OutcomeKind.PERMANENT


def _describe(a: MetaAnswer) -> str:
    """`(#100) Invalid parameter: Event Timestamp Too Old: ... [subcode 2804003]`: the
    event's reason once bisection has narrowed the batch down to it."""
    text = f"(#{a.code}) {a.message or 'error'}"
    if a.error_subcode is not None:
        text += f" [subcode {a.error_subcode}]"
    return text


def _error_text(err: dict[str, Any]) -> str | None:
    parts = [p for k in ("message", "error_user_title", "error_user_msg")
             if (p := _str(err.get(k)))]
    return ": ".join(parts) or None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(v: object) -> int | None:
    return v if _is_int(v) else None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) and v else None
