"""POST /v1/events (SPEC 3.3): authenticate, bound, decode the envelope, hand to ingest."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.config import SourceSettings
from pixelrelay.errors import StoreUnavailable
from pixelrelay.ingest import Ingestor
from pixelrelay.model import Channel
from pixelrelay.sources.browser_rules import origin_allowed
from pixelrelay.sources.keys import find_source, rate_limited, source_limits
from pixelrelay.web.credential_guard import credential_failed
from pixelrelay.web.http import bearer, json_response, problem_response, read_json
from pixelrelay.web.store_guard import NOT_COMMITTED, unavailable

MAX_EVENTS = 500
log = logging.getLogger(__name__)


class EventsEndpoint:
    def __init__(self, ingestor: Ingestor, sources: tuple[SourceSettings, ...]) -> None:
        self.ingestor = ingestor
        self.sources = sources
        self.limits = source_limits(sources)

    async def __call__(self, request: Request) -> Response:
        opened = self._authenticate(request)
        if isinstance(opened, Response):
            return opened
        source, channel = opened
        doc, nul_free, refused = await read_json(request)
        if refused is not None:
            return refused
        events, problem, dropped = _envelope(doc)
        if problem is not None:
            status = 413 if problem.startswith("too many") else 400
            error = "too_large" if status == 413 else "malformed_envelope"
            return problem_response(status, error, problem)
        refused = rate_limited(self.limits, source, len(events))
        if refused is not None:
            return refused
        try:
            result = await self.ingestor.accept(events, channel=channel, nul_free=nul_free)
        except StoreUnavailable as exc:
            return unavailable(request, exc, NOT_COMMITTED)
        result.warnings[:0] = dropped
        return json_response(result.as_dict(), 202)

    def _authenticate(self, request: Request) -> tuple[SourceSettings, Channel] | Response:
        """The source the key names and the channel it opens, or the refusal."""
        token = bearer(request)
        if token is not None:
            server = find_source(self.sources, "server", token)
            if server is None:
                credential_failed(request)
                return problem_response(401, "unauthorized", "unknown source key")
            return server, Channel.SERVER
        site_key = request.headers.get("x-pixelrelay-key")
        if site_key:
            source = find_source(self.sources, "browser", site_key)
            if source is None:
                credential_failed(request)
                return problem_response(401, "unauthorized", "unknown site key")
            origin = request.headers.get("origin")
            if not origin_allowed(origin, source.allowed_origins):
                return problem_response(403, "forbidden", f"origin {origin!r} is not allowed")
            return source, Channel.BROWSER
        return problem_response(401, "unauthorized",
                                "send Authorization: Bearer <source key>")


def _envelope(doc: object) -> tuple[list[object], str | None, list[str]]:
    """(events, why the envelope is unusable, warnings about keys dropped beside events)."""
    if isinstance(doc, dict) and "events" in doc:
        events = doc["events"]
        dropped = [f"{str(k)[:100]}: unknown field beside events; dropped"
                   for k in doc if k != "events"]
        if not isinstance(events, list):
            return [], "events must be an array", []
        if not events:
            return [], "events is empty", []
        if len(events) > MAX_EVENTS:
            return [], f"too many events: {len(events)} (at most {MAX_EVENTS} per request)", []
        return events, None, dropped
    if isinstance(doc, dict):
        return [doc], None, []
    return [], "body must be an event object or {\"events\": [...]}", []
