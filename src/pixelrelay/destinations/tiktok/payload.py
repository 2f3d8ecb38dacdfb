"""Serialise events into TikTok's `data[]` items and assemble /event/track/ request bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from pixelrelay.model import ConsentState, Event

PARTNER_NAME = "pixelrelay"
TRACK_PATH = "/open_api/v1.3/event/track/"


def build_item(event: Event, tiktok_event: str) -> dict[str, Any]:
    """One `data[]` object: hashed ids as arrays, raw context fields, empty parts omitted."""
    item: dict[str, Any] = {"event": tiktok_event, "event_time": event.event_time,
                            "event_id": event.event_id}
    u = event.user
    user: dict[str, Any] = {}
    if u.email:
        user["email"] = list(u.email)
    if u.phone:
        user["phone"] = list(u.phone)
    if u.external_id:
        user["external_id"] = list(u.external_id)
    for key, val in (("ttclid", u.ttclid), ("ttp", u.ttp), ("ip", u.ip),
                     ("user_agent", u.user_agent), ("locale", u.locale)):
        if val is not None:
            user[key] = val
    if user:
        item["user"] = user
    pg = event.page
    page = {k: v for k, v in (("url", pg.url), ("referrer", pg.referrer)) if v is not None}
    if page:
        item["page"] = page
    if event.properties:
        item["properties"] = event.properties
    # TikTok's only in-payload privacy switch; ad_personalization denied maps onto it.
    item["limited_data_use"] = event.consent.ad_personalization is ConsentState.DENIED
    return item


def encode_item(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item)


def build_body(*, pixel_code: str, event_source: str, items: Sequence[bytes],
               test_event_code: str) -> bytes:
    """The request body, concatenating items serialised at ingest instead of re-encoding them."""
    head = (b'{"event_source":' + orjson.dumps(event_source)
            + b',"event_source_id":' + orjson.dumps(pixel_code)
            + b',"partner_name":' + orjson.dumps(PARTNER_NAME))
    if test_event_code:
        head += b',"test_event_code":' + orjson.dumps(test_event_code)
    return head + b',"data":[' + b",".join(items) + b"]}"


def track_url(api_url: str) -> str:
    # The trailing slash is part of TikTok's path: without it the API answers HTTP 404.
    return api_url.rstrip("/") + TRACK_PATH
