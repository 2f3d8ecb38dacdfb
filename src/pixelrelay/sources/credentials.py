"""Which credential each route takes, and the 429 for a guesser in the shape its clients read
(each drop-in's platform's own, else the problem shape): what the failed-credential guard
(web.credential_guard) is told about the app's routes."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

from pixelrelay.sources import graph_api, tiktok_compat
from pixelrelay.web.credential_guard import rate_limited, retry_after_s

# Each drop-in: its paths, and its platform's throttling answer (which its SDKs parse).
DROP_INS: tuple[tuple[Callable[[str], bool], Callable[[str, str], Response]], ...] = (
    (tiktok_compat.is_tiktok_path, tiktok_compat.throttled),
    (graph_api.is_events_path, graph_api.throttled),
)

ADMIN = "admin token"
SOURCE = "source key"
SITE = "site key"
SHOPIFY = "Shopify signature"


def credential_kind(method: str, path: str) -> str | None:
    """Which secret a request to `path` presents, or None when it presents none."""
    if path == "/v1/events" or any(is_drop_in(path) for is_drop_in, _ in DROP_INS):
        return SOURCE  # server keys, as Bearer or in the platform's own place for a token
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
    for is_drop_in, throttled in DROP_INS:
        if is_drop_in(path):
            retry = retry_after_s(wait_s)
            return throttled(
                f"too many failed {kind} attempts from this address; retry after {retry} s",
                retry)
    return rate_limited(kind, path, wait_s)
