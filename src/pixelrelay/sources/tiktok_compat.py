"""POST /open_api/v1.3/event/track/ (SPEC 3.4): TikTok's own request shape in, TikTok's answers out.

Like TikTok, a request is accepted or refused whole: one bad event gives 40002 naming
`data.<i>.<field>` and nothing is queued.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.config import SourceSettings
from pixelrelay.errors import StoreUnavailable
from pixelrelay.ingest import Ingestor
from pixelrelay.model import Channel
from pixelrelay.sources.http import BodyTooLarge, find_source, json_response, read_body

MAX_EVENTS = 1000
_USER_KEYS = frozenset({"email", "phone", "external_id", "ttclid", "ttp", "ip", "user_agent",
                        "locale"})
_EVENT_KEYS = frozenset({"event", "event_time", "event_id", "user", "page", "properties",
                         "limited_data_use"})
# Our field names where they differ from TikTok's, for error messages in TikTok's terms.
_FIELD_NAMES = {"timestamp": "event_time", "source": "event_source"}
log = logging.getLogger(__name__)


def tiktok_answer(code: int, message: str) -> Response:
    return json_response({"code": code, "message": message,
                          "request_id": uuid.uuid4().hex, "data": {}})


class TikTokTrackEndpoint:
    def __init__(self, ingestor: Ingestor, sources: tuple[SourceSettings, ...],
                 pixel_to_destinations: dict[str, frozenset[str]]) -> None:
        self.ingestor = ingestor
        self.sources = sources
        self.pixels = pixel_to_destinations

    async def __call__(self, request: Request) -> Response:
        token = request.headers.get("access-token", "").strip()
        if not token:
            return tiktok_answer(40104, "Access token is null, set it in http header with key "
                                        "Access-Token")
        if find_source(self.sources, "server", token) is None:
            return tiktok_answer(40105, "Access token is incorrect or has been revoked.")
        try:
            doc = orjson.loads(await read_body(request))
        except BodyTooLarge:
            return tiktok_answer(40002, "body: larger than 1 MiB")
        except orjson.JSONDecodeError as exc:
            return tiktok_answer(40002, f"body: not valid JSON: {exc}")
        converted = _convert(doc, self.pixels)
        if isinstance(converted, str):
            return tiktok_answer(40002, converted)
        events, destinations = converted
        try:
            result = await self.ingestor.accept(events, channel=Channel.TIKTOK_API,
                                                only_destinations=destinations,
                                                all_or_nothing=True)
        except StoreUnavailable as exc:
            log.error("store unavailable, answering 50000: %s", exc)
            return tiktok_answer(50000, "System error: could not commit the events; retry later")
        if result.rejected:
            first = result.rejected[0]
            return tiktok_answer(40002, "; ".join(
                f"data.{first.index}.{_tiktok_field(p.field)}: {p.reason}"
                for p in first.problems))
        return tiktok_answer(0, "OK")


def _tiktok_field(field: str) -> str:
    head, dot, rest = field.partition(".")
    return _FIELD_NAMES.get(head, head) + dot + rest


def _convert(doc: object, pixels: dict[str, frozenset[str]]
             ) -> tuple[list[object], frozenset[str]] | str:
    """TikTok's body -> our raw events and the destinations its pixel names, or an error."""
    if not isinstance(doc, dict):
        return "body: must be a JSON object"
    source = doc.get("event_source")
    if source not in ("web", "app", "offline", "crm"):
        return "event_source: must be one of web, app, offline, crm"
    pixel = doc.get("event_source_id")
    if not isinstance(pixel, str) or not pixel:
        return "event_source_id: required string (the pixel code)"
    if pixel not in pixels:
        return f"event_source_id: no destination is configured for pixel code {pixel}"
    if doc.get("test_event_code"):
        return ("test_event_code: not taken per request by pixelrelay; set test_event_code on "
                "the destination so test traffic can never reach production by mistake")
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        return "data: required non-empty array"
    if len(data) > MAX_EVENTS:
        return f"data: at most {MAX_EVENTS} events, got {len(data)}"
    events: list[object] = []
    for i, item in enumerate(data):
        event = _convert_event(item, source)
        if isinstance(event, str):
            return f"data.{i}.{event}"
        events.append(event)
    return events, pixels[pixel]


def _convert_event(item: object, source: str) -> dict[str, Any] | str:
    if not isinstance(item, dict):
        return "event: each data item must be an object"
    unknown = sorted(set(item) - _EVENT_KEYS)
    if unknown:
        return f"{unknown[0]}: not supported by pixelrelay"
    if "event_time" not in item:
        return "event_time: required"
    if not isinstance(item["event_time"], int) or isinstance(item["event_time"], bool):
        return "event_time: must be an integer Unix time in seconds"
    out: dict[str, Any] = {"source": source, "timestamp": item["event_time"]}
    for key in ("event", "event_id", "page", "properties"):
        if key in item:
            out[key] = item[key]
    user = item.get("user")
    if user is not None:
        if not isinstance(user, dict):
            return "user: must be an object"
        unknown = sorted(set(user) - _USER_KEYS)
        if unknown:
            return f"user.{unknown[0]}: not supported by pixelrelay"
        out["user"] = user
    ldu = item.get("limited_data_use")
    if ldu is not None and not isinstance(ldu, bool):
        return "limited_data_use: must be a boolean"
    if ldu:
        out["consent"] = {"ad_personalization": "denied"}
    return out
