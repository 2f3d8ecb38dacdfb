"""Admin endpoints (admin token): the delivery log of an event, resuming a paused destination."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.config import Secret
from pixelrelay.sources.http import bearer, json_response, problem_response
from pixelrelay.store.base import Store


def admin_denied(request: Request, admin_token: Secret) -> Response | None:
    """None when the request carries the admin token (Bearer or X-Admin-Token)."""
    if not admin_token:
        return problem_response(403, "forbidden", "set server.admin_token to use admin endpoints")
    given = bearer(request) or request.headers.get("x-admin-token", "")
    if not given or not hmac.compare_digest(given.encode(), admin_token.reveal().encode()):
        return problem_response(401, "unauthorized", "admin token required")
    return None


class DeliveriesEndpoint:
    """GET /v1/deliveries?event_id=...: per destination state, attempts and TikTok's last answer."""

    def __init__(self, store: Store, admin_token: Secret) -> None:
        self.store = store
        self.admin_token = admin_token

    async def __call__(self, request: Request) -> Response:
        denied = admin_denied(request, self.admin_token)
        if denied is not None:
            return denied
        event_id = request.query_params.get("event_id", "")
        if not event_id:
            return problem_response(400, "bad_request", "query parameter event_id is required")
        views = await self.store.deliveries(event_id)
        return json_response({"event_id": event_id,
                              "deliveries": [asdict(v) for v in views]})


class ResumeEndpoint:
    """POST /v1/destinations/{name}/resume: lift a pause after fixing the token or permission."""

    def __init__(self, resume: Callable[[str], bool], admin_token: Secret) -> None:
        self.resume = resume
        self.admin_token = admin_token

    async def __call__(self, request: Request) -> Response:
        denied = admin_denied(request, self.admin_token)
        if denied is not None:
            return denied
        name = request.path_params["name"]
        if not self.resume(name):
            return problem_response(404, "not_found", f"no destination named {name!r}")
        return json_response({"destination": name, "resumed": True})
