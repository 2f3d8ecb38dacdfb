"""A store failure is a 503 with Retry-After on every route, logged once per burst.

`guarded` wraps each route that reads or writes the store: a StoreUnavailable escaping it is
answered 503 (a page for a browser, JSON otherwise) instead of a 500 with a traceback.
Endpoints that answer the failure in their own words (the drop-in's 50000, the tag's CORS
headers) do so with `unavailable` or `note_unavailable`, so the guard still counts it. The
first failure after a success logs a warning, the next ones are counted silently, and the
first success after them logs how many there were (bursts.BurstLog).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.bursts import BurstLog
from pixelrelay.errors import StoreUnavailable
from pixelrelay.web.http import problem_response

RETRY_AFTER_S = 5  # a restart or failover takes seconds; sooner only adds load to a sick database
RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_S)}
UNAVAILABLE = "storage is unavailable; retry later"
NOT_COMMITTED = "storage is unavailable: could not commit; retry later"  # ingest's 503
_FAILURE = "pixelrelay.store_failure"  # scope key: the failure a 503 answered

Endpoint = Callable[[Request], Awaitable[Response]]
# A route's own answer for a browser (HTML), or None where JSON is the answer.
Page = Callable[[Request], Response | None]


def note_unavailable(request: Request, exc: StoreUnavailable) -> None:
    """Record that this request met a store failure (the guard logs it, once per burst)."""
    request.scope[_FAILURE] = exc


def unavailable(request: Request, exc: StoreUnavailable, reason: str = UNAVAILABLE,
                headers: dict[str, str] | None = None) -> Response:
    """The JSON answer to a store failure: 503, `error: unavailable`, Retry-After."""
    note_unavailable(request, exc)
    return problem_response(503, "unavailable", reason, headers={**RETRY_AFTER,
                                                                 **(headers or {})})


def guarded(endpoint: Endpoint, outage: BurstLog, page: Page | None = None) -> Endpoint:
    """`endpoint`, with its store failures answered 503 and logged through `outage`.

    A success is an answer below 400: a refusal (401, 404) may not have reached the store,
    so it neither ends a burst nor starts one.
    """
    async def guard(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except StoreUnavailable as exc:
            response = (page and page(request)) or unavailable(request, exc)
            note_unavailable(request, exc)
        failure = request.scope.get(_FAILURE)
        if failure is not None:
            outage.failed(failure)
        elif response.status_code < 400:
            outage.recovered()
        return response

    return guard
