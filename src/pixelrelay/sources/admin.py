"""Admin endpoints (admin token): the delivery log of an event, resuming a paused destination."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.config import Secret
from pixelrelay.destinations import purchase_names
from pixelrelay.errors import StoreUnavailable
from pixelrelay.event_ids import order_event_id
from pixelrelay.names import snake_case
from pixelrelay.store.base import Store
from pixelrelay.web.admin_auth import admin_denied
from pixelrelay.web.http import json_response, problem_response
from pixelrelay.web.store_guard import unavailable

Rejections = Callable[[str | None, str | None], Awaitable[list[dict[str, Any]]]]


class DeliveriesEndpoint:
    """GET /v1/deliveries?event_id=... (or ?order_id=...): per destination state, attempts
    and TikTok's last answer, and every refusal at ingest of that event or order."""

    def __init__(self, store: Store, admin_token: Secret, rejections: Rejections) -> None:
        self.store = store
        self.admin_token = admin_token
        self.rejections = rejections

    async def __call__(self, request: Request) -> Response:
        denied = admin_denied(request, self.admin_token)
        if denied is not None:
            return denied
        event_id = request.query_params.get("event_id", "").strip()[:256]
        order_id = request.query_params.get("order_id", "").strip()[:128]
        if not event_id and not order_id:
            return problem_response(400, "bad_request",
                                    "query parameter event_id (or order_id) is required")
        # An order's purchase goes by the derived id ord_<order>_<snake TikTok name>.
        ids = [event_id] if event_id else [order_event_id(order_id, snake_case(n))
                                           for n in sorted(purchase_names())]
        try:
            views = [v for i in ids for v in await self.store.deliveries(i)]
            rejected = await self.rejections(event_id or None, order_id or None)
        except StoreUnavailable as exc:
            return unavailable(request, exc, "storage is unavailable: could not read the log; "
                               "retry later")
        body: dict[str, Any] = {"event_id": event_id or None,
                                "deliveries": [asdict(v) for v in views], "rejected": rejected}
        if order_id:
            body["order_id"] = order_id
        return json_response(body)


class ResumeEndpoint:
    """POST /v1/destinations/{name}/resume: lift a pause after fixing the token or permission.

    `resume` writes the lifted pause to the store, so it holds for every delivery process,
    whichever API process took the request; False when no destination has that name.
    """

    def __init__(self, resume: Callable[[str], Awaitable[bool]], admin_token: Secret) -> None:
        self.resume = resume
        self.admin_token = admin_token

    async def __call__(self, request: Request) -> Response:
        denied = admin_denied(request, self.admin_token)
        if denied is not None:
            return denied
        name = request.path_params["name"]
        try:
            known = await self.resume(name)
        except StoreUnavailable as exc:
            return unavailable(request, exc,
                               "storage is unavailable: the pause is unchanged; retry later")
        if not known:
            return problem_response(404, "not_found", f"no destination named {name!r}")
        return json_response({"destination": name, "resumed": True})
