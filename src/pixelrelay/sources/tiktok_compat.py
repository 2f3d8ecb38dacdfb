"""POST /open_api/v1.3/event/track/ (SPEC 3.4): TikTok's own request shape in, TikTok's answers out.

Like TikTok, a request is accepted or refused whole: one bad event gives 40002 naming
`data.<i>.<field>` and nothing is queued. Unlike a plain field check, a key pixelrelay does
not know is dropped (code 0, named in `data.warnings`), so no sender loses a conversion to
an extra field.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.config import DestinationSettings, SourceSettings
from pixelrelay.destinations.tiktok import SOURCE_ID_KEYS
from pixelrelay.errors import StoreUnavailable
from pixelrelay.ingest import Ingestor
from pixelrelay.model import Channel, Source
from pixelrelay.pipeline import nesting
from pixelrelay.pipeline.readers import may_hold_nul
from pixelrelay.sources.keys import find_source
from pixelrelay.web.credential_guard import credential_failed
from pixelrelay.web.http import BodyTooLarge, json_response, read_body
from pixelrelay.web.store_guard import note_unavailable

MAX_EVENTS = 1000
SOURCE_ID = "event_source_id"  # which pixel (web) or event set the request is for
SOURCE_ID_DOC = ("A configured destination's pixel_code (web), offline_event_set_id (offline), "
                 "crm_event_set_id (crm) or app_id (app), matching event_source.")
REQUIRED_KEYS = ("event_source", SOURCE_ID, "data")
TOP_KEYS = frozenset({*REQUIRED_KEYS, "test_event_code", "partner_name"})
# Our field names where they differ from TikTok's, for error messages in TikTok's terms.
_FIELD_NAMES = {"timestamp": "event_time", "source": "event_source"}
log = logging.getLogger(__name__)


PATHS = "/open_api/"  # TikTok's API paths, which the drop-in takes (event/track/)


def is_tiktok_path(path: str) -> bool:
    return path.startswith(PATHS)


def throttled(reason: str, retry_after: str) -> Response:
    """TikTok's rate-limit answer (code 40100), as HTTP 429 with Retry-After."""
    return json_response({"code": 40100, "message": reason, "request_id": uuid.uuid4().hex,
                          "data": {}}, 429, {"Retry-After": retry_after})


def tiktok_answer(code: int, message: str, data: dict[str, Any] | None = None) -> Response:
    return json_response({"code": code, "message": message,
                          "request_id": uuid.uuid4().hex, "data": data or {}})


@dataclass(frozen=True, slots=True)
class Target:
    """The destinations an event_source_id names, and the source that id belongs to."""

    destinations: frozenset[str]
    source: Source


def targets(destinations: Sequence[DestinationSettings]) -> dict[str, Target]:
    """Every TikTok id a destination is configured with (pixel, event sets, app) -> Target."""
    names: dict[tuple[str, Source], set[str]] = {}
    for d in destinations:
        if d.type != "tiktok":  # its ids are the TikTok destinations' own
            continue
        for source, key in SOURCE_ID_KEYS.items():
            ident = str(getattr(d.platform, key))
            if ident:
                names.setdefault((ident, source), set()).add(d.name)
    return {ident: Target(frozenset(n), source) for (ident, source), n in names.items()}


class TikTokTrackEndpoint:
    def __init__(self, ingestor: Ingestor, sources: tuple[SourceSettings, ...],
                 destinations: Sequence[DestinationSettings]) -> None:
        self.ingestor = ingestor
        self.sources = sources
        self.targets = targets(destinations)

    async def __call__(self, request: Request) -> Response:
        token = request.headers.get("access-token", "").strip()
        if not token:
            return tiktok_answer(40104, "Access token is null, set it in http header with key "
                                        "Access-Token")
        if find_source(self.sources, "server", token) is None:
            credential_failed(request)
            return tiktok_answer(40105, "Access token is incorrect or has been revoked.")
        try:
            body = await read_body(request)
            doc = nesting.loads(body)
        except BodyTooLarge:
            return tiktok_answer(40002, "body: larger than 1 MiB")
        except orjson.JSONDecodeError as exc:
            return tiktok_answer(40002, f"body: not valid JSON: {exc}")
        except nesting.TooDeep as exc:
            return tiktok_answer(40002, f"{nesting.dotted(exc.path)}: {nesting.REASON}")
        converted = convert(doc, self.targets)
        if isinstance(converted, str):
            return tiktok_answer(40002, converted)
        try:
            result = await self.ingestor.accept(converted.events, channel=Channel.TIKTOK_API,
                                                only_destinations=converted.destinations,
                                                all_or_nothing=True,
                                                nul_free=not may_hold_nul(body))
        except StoreUnavailable as exc:
            note_unavailable(request, exc)  # TikTok's answer to it; logged once per outage
            return tiktok_answer(50000, "System error: could not commit the events; retry later")
        if result.rejected:
            first = result.rejected[0]
            return tiktok_answer(40002, "; ".join(
                f"data.{first.index}.{_tiktok_field(p.field)}: {p.message()}"
                for p in first.problems))
        warnings = converted.warnings + [_tiktok_warning(w) for w in result.warnings]
        return tiktok_answer(0, "OK", {"warnings": warnings} if warnings else None)


@dataclass(frozen=True, slots=True)
class Converted:
    events: list[object]
    destinations: frozenset[str]
    warnings: list[str]


def _tiktok_field(field: str) -> str:
    head, dot, rest = field.partition(".")
    return _FIELD_NAMES.get(head, head) + dot + rest


def _tiktok_warning(warning: str) -> str:
    """"events[3] user.x: ..." (the ingest wording) -> "data.3.user.x: ..." (TikTok's)."""
    if warning.startswith("events["):
        index, _, rest = warning[len("events["):].partition("] ")
        return f"data.{index}.{_tiktok_field(rest)}"
    return warning


def convert(doc: object, known: dict[str, Target]) -> Converted | str:
    """TikTok's body -> our raw events and the destinations its id names, or an error."""
    if not isinstance(doc, dict):
        return "body: must be a JSON object"
    warnings = [f"{str(k)[:100]}: unknown field; dropped" for k in doc if k not in TOP_KEYS]
    source = doc.get("event_source")
    if source not in ("web", "app", "offline", "crm"):
        return "event_source: must be one of web, app, offline, crm"
    ident = doc.get("event_source_id")
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    if not isinstance(ident, str) or not ident.strip():
        return "event_source_id: required string (the pixel code, event set id or app id)"
    target = known.get(ident.strip())
    if target is None:
        return (f"event_source_id: no destination is configured with {ident.strip()!r} as "
                "its pixel_code, offline_event_set_id, crm_event_set_id or app_id")
    if target.source.value != source:
        return (f"event_source_id: {ident.strip()} is the {SOURCE_ID_KEYS[target.source]} of "
                f"destination {', '.join(sorted(target.destinations))}, but event_source is "
                f"{source}; use event_source {target.source.value}")
    test_code = doc.get("test_event_code")
    if test_code is not None and not isinstance(test_code, str):
        return "test_event_code: must be a string"
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        return "data: required non-empty array"
    if len(data) > MAX_EVENTS:
        return f"data: at most {MAX_EVENTS} events, got {len(data)}"
    events: list[object] = []
    for i, item in enumerate(data):
        event = _convert_event(item, source, test_code or None)
        if isinstance(event, str):
            return f"data.{i}.{event}"
        events.append(event)
    return Converted(events, target.destinations, warnings)


def _convert_event(item: object, source: str, test_code: str | None) -> dict[str, Any] | str:
    """One data[] item as a /v1/events object: the same keys but event_time -> timestamp and
    the request's source and test code; everything else is judged by the shared parser."""
    if not isinstance(item, dict):
        return "event: each data item must be an object"
    if "event_time" not in item or item["event_time"] in (None, ""):
        return "event_time: required"
    t = item["event_time"]
    if not isinstance(t, int) or isinstance(t, bool):
        return "event_time: must be an integer Unix time in seconds"
    # pixelrelay's own keys (consent, session_id, order_source) are taken here too.
    out: dict[str, Any] = {k: v for k, v in item.items()
                           if k not in ("event_time", "source", "timestamp")}
    out["source"] = source
    out["timestamp"] = t
    # Segment once put test_event_code inside data[]; TikTok wants it at the top level.
    own_code = item.get("test_event_code")
    if test_code is not None or not isinstance(own_code, str) or not own_code.strip():
        out.pop("test_event_code", None)
        if test_code is not None:
            out["test_event_code"] = test_code
    return out
