"""The Graph API's wire shapes the Meta-compatible drop-in answers in: its events path and
its error objects (`{"error": {message, type, code, error_subcode, fbtrace_id}}`).

Apart from the drop-in itself so that the credential guard, which sits in front of every
route, can refuse a guesser on this path in the same shape without importing the endpoint.
Written from meta-capi.md §5, not taken from the emulator: the emulator judges pixelrelay
and must stay independent of it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from starlette.responses import Response

from pixelrelay.web.http import json_response

# `/v25.0/<pixel or dataset id>/events`: only a version segment makes it the events edge, so
# the route can never take a path another route serves (those start /v1/, /open_api/...).
EVENTS_PATH = "/{version}/{pixel_id}/events"
EVENTS_PATH_RE = re.compile(r"^/(?P<version>v[0-9]{1,3}\.[0-9]{1,3})/(?P<pixel_id>[^/]+)/events$")

OAUTH = "OAuthException"
METHOD = "GraphMethodException"
TRANSIENT = 2  # "API Service: temporary, downtime": senders wait and retry
THROTTLED = 4  # "Too many calls": senders back off and retry
INVALID_PARAMETER = 100
TOKEN_MISSING = 104
TOKEN_INVALID = 190


def is_events_path(path: str) -> bool:
    return path.endswith("/events") and EVENTS_PATH_RE.match(path) is not None


def fbtrace_id() -> str:
    """An id in the shape of Meta's (23 URL-safe characters), for the sender's logs."""
    return secrets.token_urlsafe(17)


@dataclass(frozen=True, slots=True)
class GraphError:
    """One Graph API error answer: the HTTP status and the `error` object's fields."""

    status: int
    code: int
    message: str
    type: str = OAUTH
    subcode: int | None = None
    is_transient: bool | None = None
    user_title: str | None = None
    user_msg: str | None = None

    def response(self, headers: dict[str, str] | None = None) -> Response:
        trace = fbtrace_id()
        err: dict[str, object] = {"message": self.message, "type": self.type,
                                  "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.is_transient is not None:
            err["is_transient"] = self.is_transient
        if self.user_title is not None:
            err["error_user_title"] = self.user_title
        if self.user_msg is not None:
            err["error_user_msg"] = self.user_msg
        err["fbtrace_id"] = trace
        return json_response({"error": err}, self.status,
                             {"x-fb-trace-id": trace, **(headers or {})})


def throttled(reason: str, retry_after: str) -> Response:
    """Code 4 with is_transient (Meta-aware senders back off), as HTTP 429 with Retry-After
    (so does any other client)."""
    return GraphError(429, THROTTLED, f"(#4) {reason}", is_transient=True).response(
        {"Retry-After": retry_after})
