"""POST /{version}/{pixel_id}/events (issue 27): Meta's Conversions API request in, the Graph
API's answers out, so a sender already speaking Meta's API gains every destination by
changing its base URL.

It takes what Meta's clients send: JSON, or a urlencoded or multipart form whose `data` is a
JSON-encoded array (Meta's SDK JSON-encodes each event in it too); the token as the
`access_token` query parameter, a body field or `Authorization: Bearer` — a server source's
key. Like Meta, a request is accepted or refused whole (meta_map says how events convert).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pixelrelay.config import DestinationSettings, SourceSettings
from pixelrelay.destinations.meta.settings import MetaSettings
from pixelrelay.errors import Problem, StoreUnavailable
from pixelrelay.ingest import Ingestor
from pixelrelay.model import Channel
from pixelrelay.pipeline import nesting
from pixelrelay.pipeline.readers import may_hold_nul
from pixelrelay.sources import graph_api as g
from pixelrelay.sources.keys import find_source, source_limits
from pixelrelay.sources.meta_map import (
    SUBCODE_FIELD,
    SUBCODE_TOO_OLD,
    Refusal,
    convert,
    meta_path,
)
from pixelrelay.web.credential_guard import credential_failed
from pixelrelay.web.http import MAX_BODY_BYTES, BodyTooLarge, bearer, json_response, read_body
from pixelrelay.web.store_guard import RETRY_AFTER, note_unavailable

log = logging.getLogger(__name__)

TOKEN_MISSING = g.GraphError(400, g.TOKEN_MISSING,
                             "An access token is required to request this resource.")
TOKEN_UNKNOWN = g.GraphError(400, g.TOKEN_INVALID,
                             "Invalid OAuth access token - Cannot parse access token")
# Graph names a bad token in this header beside the error object.
INVALID_TOKEN = {"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token" '
                                     '"Invalid OAuth access token - Cannot parse access token"'}
STORE_DOWN = g.GraphError(500, g.TRANSIENT, "An unexpected error has occurred. Please retry "
                                            "your request later.", is_transient=True)
_JSON, _FORM, _MULTIPART = "application/json", "application/x-www-form-urlencoded", \
    "multipart/form-data"


class GraphEventsRoute(Route):
    """The route of `/{version}/{pixel_id}/events` that matches only a version segment such as
    v25.0, so no path another route serves (or a mistyped one) lands here."""

    def __init__(self, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(g.EVENTS_PATH, endpoint, **kwargs)
        self.path_regex = g.EVENTS_PATH_RE


def refusal(problem: Refusal) -> g.GraphError:
    """Graph's per-event validation error: code 100, the field named in Meta's terms."""
    too_old = problem.subcode == SUBCODE_TOO_OLD
    return g.GraphError(400, g.INVALID_PARAMETER, f"(#100) {problem.text()}",
                        subcode=problem.subcode, is_transient=False,
                        user_title="Event Timestamp Too Old" if too_old else "Invalid parameter",
                        user_msg=problem.text())


def rejected(index: int, problems: Sequence[Problem]) -> Refusal:
    """The parser's problems with one event as one Refusal in Meta's terms."""
    first = problems[0]
    subcode = SUBCODE_TOO_OLD if first.field == "timestamp" and "older" in first.reason \
        else SUBCODE_FIELD
    at = f"data[{index}]"
    more = "".join(f"; {at}.{meta_path(p.field)}: {p.message()}" for p in problems[1:])
    return Refusal(f"{at}.{meta_path(first.field)}", first.message() + more, subcode)


def pixel_routes(destinations: Sequence[DestinationSettings]
                 ) -> tuple[frozenset[str], dict[str, frozenset[str] | None]]:
    """(every configured Meta pixel id, pixel id -> the destinations its events go to).

    Every destination but the Meta ones of other pixels: the sender named its pixel. None
    means all of them. With no Meta destination configured, any pixel id goes everywhere.
    """
    metas = [d for d in destinations if isinstance(d.platform, MetaSettings)]
    pixels = frozenset(d.platform.pixel_id for d in metas)
    routes: dict[str, frozenset[str] | None] = {}
    for pixel in pixels:
        others = {d.name for d in metas if d.platform.pixel_id != pixel}
        routes[pixel] = (None if not others else
                         frozenset(d.name for d in destinations if d.name not in others))
    return pixels, routes


def read_params(content_type: str | None, body: bytes, query: str
                ) -> tuple[dict[str, Any] | Refusal, bool]:
    """The query string's parameters and the body's (a JSON object, or form fields), the
    body's winning, as Graph merges them; and whether the events are known to hold no U+0000
    (only JSON text says so: see readers.may_hold_nul)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not body.strip():
        return params, False
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media:  # curl -d without -H: sniff, as nothing else would read it
        media = _JSON if body.lstrip()[:1] == b"{" else _FORM
    if media == _JSON or (media.startswith("application/") and media.endswith("+json")):
        try:
            doc = nesting.loads(body)
        except orjson.JSONDecodeError as exc:
            return Refusal("body", f"is not valid JSON: {exc}"), False
        except nesting.TooDeep as exc:
            return Refusal(nesting.dotted(exc.path, "[{}]"), nesting.REASON), False
        if not isinstance(doc, dict):
            return Refusal("body", "must be a JSON object"), False
        from_query = "data" in params and "data" not in doc
        params.update(doc)
        return params, not from_query and not may_hold_nul(body)
    if media == _FORM:
        try:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return Refusal("body", "is not UTF-8"), False
    elif media == _MULTIPART:
        fields = _multipart(content_type or "", body)
        if isinstance(fields, Refusal):
            return fields, False
        params.update(fields)
    else:
        return Refusal("Content-Type", f"must be {_JSON}, {_FORM} or {_MULTIPART}"), False
    return params, False


def _multipart(content_type: str, body: bytes) -> dict[str, str] | Refusal:
    """The text fields of a multipart/form-data body (`curl -F data=[...]`)."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return Refusal("body", "is not multipart/form-data (no boundary?)")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str):
            return Refusal("body", "a multipart part has no name")
        try:
            fields[name] = payload.decode("utf-8") if isinstance(payload, bytes) else ""
        except UnicodeDecodeError:
            return Refusal(name, "is not UTF-8")
    return fields


def find_token(params: Mapping[str, Any], request: Request) -> str | None:
    """Where Meta's clients put it: the query string (Meta's docs, RudderStack), a body
    field (Meta's SDK), or Authorization: Bearer (Segment)."""
    for token in (params.get("access_token"), bearer(request)):
        if isinstance(token, str) and token.strip():
            return token.strip()
    return None


class MetaEventsEndpoint:
    def __init__(self, ingestor: Ingestor, sources: tuple[SourceSettings, ...],
                 destinations: Sequence[DestinationSettings]) -> None:
        self.ingestor = ingestor
        self.sources = sources
        self.limits = source_limits(sources)
        self.pixels, self.routes = pixel_routes(destinations)

    async def __call__(self, request: Request) -> Response:
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return g.GraphError(413, g.INVALID_PARAMETER, f"(#100) body: larger than "
                                f"{MAX_BODY_BYTES // (1024 * 1024)} MiB").response(
                {"Connection": "close"})
        params, nul_free = read_params(request.headers.get("content-type"), body,
                                       request.url.query)
        token = find_token(params if isinstance(params, dict) else
                           dict(parse_qsl(request.url.query)), request)
        if token is None:
            return TOKEN_MISSING.response()
        source = find_source(self.sources, "server", token)
        if source is None:
            credential_failed(request)
            return TOKEN_UNKNOWN.response(INVALID_TOKEN)
        if isinstance(params, Refusal):
            return refusal(params).response()
        pixel = request.path_params["pixel_id"]
        if self.pixels and pixel not in self.pixels:
            return g.GraphError(
                400, g.INVALID_PARAMETER, f"Unsupported post request. Object with ID "
                f"'{pixel[:64]}' does not exist: no Meta destination is configured with it "
                "as its pixel_id", type=g.METHOD, subcode=33).response()
        converted = convert(params)
        if isinstance(converted, Refusal):
            return refusal(converted).response()
        bucket = self.limits.get(source.name)
        wait = bucket.try_take(len(converted.events)) if bucket is not None else 0.0
        if wait > 0:
            return g.throttled(f"source {source.name} is limited to {source.rate_limit:g} "
                               "events/s", str(max(1, math.ceil(wait))))
        try:
            result = await self.ingestor.accept(
                converted.events, channel=Channel.META_API, only_destinations=self.routes.get(
                    pixel), all_or_nothing=True, nul_free=nul_free)
        except StoreUnavailable as exc:
            note_unavailable(request, exc)  # the guard logs it, once per outage
            return STORE_DOWN.response(RETRY_AFTER)
        if result.rejected:
            first = result.rejected[0]
            return refusal(rejected(first.index, first.problems)).response()
        trace = g.fbtrace_id()
        return json_response({
            "events_received": len(converted.events),
            "messages": converted.messages(result.warnings),
            "fbtrace_id": trace}, headers={"x-fb-trace-id": trace})
