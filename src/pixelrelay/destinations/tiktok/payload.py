"""Serialise events into TikTok's `data[]` items and assemble /event/track/ request bodies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import orjson

from pixelrelay.destinations.tiktok.ids import OWN_KEYS
from pixelrelay.model import Ad, App, ConsentState, Event, Lead, Source

PARTNER_NAME = "pixelrelay"
TRACK_PATH = "/open_api/v1.3/event/track/"


def build_item(event: Event, tiktok_event: str) -> dict[str, Any]:
    """One `data[]` object in TikTok's shape: hashed ids as arrays (tuples until encoded),
    empty parts omitted."""
    item: dict[str, Any] = {"event": tiktok_event, "event_time": event.event_time,
                            "event_id": event.event_id}
    user = event.user.given()
    foreign = [k for k, _ in event.user.click_ids if k not in OWN_KEYS]
    if foreign:  # another platform's ids: not TikTok's business
        for key in foreign:
            del user[key]
    if user:
        item["user"] = user
    pg = event.page
    page = {k: v for k, v in (("url", pg.url), ("referrer", pg.referrer)) if v is not None}
    if page:
        item["page"] = page
    if event.properties:
        item["properties"] = event.properties
    if event.app is not None:
        item["app"] = _present(event.app)
    if event.ad is not None:
        item["ad"] = _present(event.ad)
    if event.lead is not None and event.source is Source.CRM:
        item["lead"] = _present(event.lead)
    if event.device:
        item["device"] = event.device
    # TikTok's only in-payload privacy switch: the sender's flag, forced on when the visitor
    # denied ad personalisation.
    item["limited_data_use"] = bool(event.limited_data_use) or (
        event.consent.ad_personalization is ConsentState.DENIED)
    return item


def _present(part: App | Ad | Lead) -> dict[str, Any]:
    return {f.name: v for f in fields(part) if (v := getattr(part, f.name)) is not None}


def encode_item(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item)


def build_body(*, event_source_id: str, event_source: str, items: Sequence[bytes],
               test_event_code: str | None) -> bytes:
    """The request body, concatenating items serialised at ingest instead of re-encoding them."""
    head = (b'{"event_source":' + orjson.dumps(event_source)
            + b',"event_source_id":' + orjson.dumps(event_source_id)
            + b',"partner_name":' + orjson.dumps(PARTNER_NAME))
    if test_event_code:
        head += b',"test_event_code":' + orjson.dumps(test_event_code)
    return head + b',"data":[' + b",".join(items) + b"]}"


def track_url(api_url: str) -> str:
    # The trailing slash is part of TikTok's path: without it the API answers HTTP 404.
    return api_url.rstrip("/") + TRACK_PATH
