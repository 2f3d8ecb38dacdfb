"""Which credential each route takes, and the 429 for a guesser in the shape its clients read
(TikTok's code 40100 on the drop-in, Graph's error object on Meta's, else the problem shape):
what the failed-credential guard (web.credential_guard) is told about the app's routes."""

from __future__ import annotations

import uuid

from starlette.responses import Response

from pixelrelay.sources import graph_api
from pixelrelay.web.credential_guard import rate_limited, retry_after_s
from pixelrelay.web.http import json_response

ADMIN = "admin token"
SOURCE = "source key"
SITE = "site key"
SHOPIFY = "Shopify signature"


def credential_kind(method: str, path: str) -> str | None:
    """Which secret a request to `path` presents, or None when it presents none."""
    if path == "/v1/events" or path.startswith("/open_api/"):
        return SOURCE  # server keys, as Bearer or as TikTok's Access-Token
    if graph_api.is_events_path(path):
        return SOURCE  # a server key as Meta's access_token (query, form field or Bearer)
    if path == "/v1/collect":
        return None if method == "OPTIONS" else SITE
    if path.startswith("/v1/webhooks/shopify/"):
        return SHOPIFY
    if path == "/login":
        return ADMIN if method == "POST" else None
    if path in ("/", "/v1/diagnostics", "/v1/deliveries") or path.startswith(
            ("/v1/destinations/", "/v1/events/")):
        return ADMIN
    return None


def refusal(kind: str, path: str, wait_s: float) -> Response:
    retry = retry_after_s(wait_s)
    reason = f"too many failed {kind} attempts from this address; retry after {retry} s"
    if path.startswith("/open_api/"):  # TikTok's shape, with its rate limit code
        return json_response({"code": 40100, "message": reason,
                              "request_id": uuid.uuid4().hex, "data": {}}, 429,
                             {"Retry-After": retry})
    if graph_api.is_events_path(path):  # Graph's error object, which Meta's SDKs parse
        return graph_api.throttled(reason, retry)
    return rate_limited(kind, path, wait_s)
