"""Build Meta server events (`data[]` items) and /{pixel_id}/events request bodies. No I/O.

Keys are emitted in a fixed order (orjson keeps insertion order), so one input gives one body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pixelrelay.destinations.meta.names import PURCHASE_EVENTS

MAX_BATCH = 1000  # events in one request; one invalid event refuses all of them
DAY = 86_400
MAX_AGE_S = 7 * DAY  # "greater than 7 days in the past" fails the whole request (100/2804003)
MAX_AGE_PHYSICAL_STORE_S = 62 * DAY
# Meta compares with its own clock when the request arrives: an event checked just inside
# the window may be outside it by then, and it would take its whole batch down with it.
AGE_MARGIN_S = 60
MAX_FUTURE_S = 60  # Meta documents no tolerance; RudderStack refuses more than a minute

ACTION_SOURCES: frozenset[str] = frozenset({
    "website", "app", "email", "phone_call", "chat", "physical_store", "system_generated",
    "business_messaging", "other"})

# pixelrelay's event sources -> Meta's action_source. CRM updates (a lead qualified, an
# order refunded) happen in the advertiser's systems: Meta's CRM guide sends system_generated.
_FROM_SOURCE: Mapping[str, str] = {
    "web": "website", "app": "app", "offline": "physical_store", "crm": "system_generated"}


def action_source(source: str, override: str | None = None) -> str:
    """Meta's action_source for an event of `source` (web, app, offline, crm, or already one
    of Meta's values); an explicit override (the event says where it happened) wins when it
    is one of Meta's values. Anything else is `other`."""
    if override in ACTION_SOURCES:
        return override
    if source in ACTION_SOURCES:
        return source
    return _FROM_SOURCE.get(source, "other")


def events_url(api_url: str, api_version: str, pixel_id: str) -> str:
    """`{api_url}/{api_version}/{pixel_id}/events`; the version in the path, with its `v`."""
    version = api_version.strip("/")
    if not version.startswith("v"):
        version = "v" + version
    return f"{api_url.rstrip('/')}/{version}/{pixel_id.strip('/')}/events"


def request_headers(access_token: str) -> dict[str, str]:
    """The token as `Authorization: Bearer` (Graph API accepts it beside the `access_token`
    query or form field): a URL is quoted in the sender's error text and a body may be kept
    for traces, a header is neither."""
    return {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}


def age_problem(event_time: int, now: float, source: str = "website") -> str | None:
    """Why Meta would refuse this event_time (and with it the whole request), or None.
    Check right before sending: the window moves while an event waits in the queue."""
    limit = MAX_AGE_PHYSICAL_STORE_S if source == "physical_store" else MAX_AGE_S
    age = now - event_time
    if age > limit - AGE_MARGIN_S:
        return (f"event_time: more than {limit // DAY} days old; Meta refuses the whole "
                "request for one such event")
    if age < -MAX_FUTURE_S:
        return "event_time: in the future"
    return None


def within_window(event_time: int, now: float, source: str = "website") -> bool:
    return age_problem(event_time, now, source) is None


@dataclass(frozen=True, slots=True)
class Item:
    """One `custom_data.contents` entry: Meta's `id` / `item_price`, not TikTok's
    `content_id` / `price`."""

    id: str
    quantity: int | None = None
    item_price: float | None = None
    title: str | None = None
    category: str | None = None
    brand: str | None = None


def custom_data(*, value: float | None = None, currency: str | None = None,
                contents: Sequence[Item] = (), content_ids: Sequence[str] = (),
                content_type: str | None = None, content_name: str | None = None,
                order_id: str | None = None, num_items: int | None = None,
                search_string: str | None = None, status: str | None = None
                ) -> dict[str, Any]:
    """Meta's custom_data, absent parts left out. Currency goes upper-case (ISO 4217)."""
    out: dict[str, Any] = {}
    if value is not None:
        out["value"] = value
    if currency:
        out["currency"] = currency.strip().upper()
    if contents:
        out["contents"] = [_item(i) for i in contents]
    if content_ids:
        out["content_ids"] = list(content_ids)
    for key, v in (("content_type", content_type), ("content_name", content_name),
                   ("order_id", order_id), ("num_items", num_items),
                   ("search_string", search_string), ("status", status)):
        if v is not None and v != "":
            out[key] = v
    return out


def _item(i: Item) -> dict[str, Any]:
    out: dict[str, Any] = {"id": i.id}
    for key, v in (("quantity", i.quantity), ("item_price", i.item_price),
                   ("title", i.title), ("category", i.category), ("brand", i.brand)):
        if v is not None:
            out[key] = v
    return out


def user_data(hashed: Mapping[str, Sequence[str]], *, client_ip_address: str | None = None,
              client_user_agent: str | None = None, fbc: str | None = None,
              fbp: str | None = None) -> dict[str, Any]:
    """hashing.hash_user's keys, then the four Meta takes unhashed. fbc and fbp go exactly as
    given: the click id in fbc is case-sensitive."""
    out: dict[str, Any] = {k: list(v) for k, v in hashed.items() if v}
    for key, v in (("client_ip_address", client_ip_address),
                   ("client_user_agent", client_user_agent), ("fbc", fbc), ("fbp", fbp)):
        if v:
            out[key] = v
    return out


def build_event(*, event_name: str, event_time: int, event_id: str | None,
                action_source: str, user_data: Mapping[str, Any],
                event_source_url: str | None = None, referrer_url: str | None = None,
                custom_data: Mapping[str, Any] | None = None,
                app_data: Mapping[str, Any] | None = None, opt_out: bool = False,
                limited_data_use: bool = False, ldu_country: int = 0, ldu_state: int = 0
                ) -> dict[str, Any]:
    """One `data[]` server event. Limited Data Use is `data_processing_options: ["LDU"]`
    with country and state 0 (Meta geolocates) unless configured (1 / 1000 = US / California);
    without it the three keys are left out, which Meta reads as no LDU."""
    if action_source not in ACTION_SOURCES:
        raise ValueError(f"action_source: {action_source!r} is not one of Meta's")
    ev: dict[str, Any] = {"event_name": event_name, "event_time": int(event_time)}
    if event_id:
        ev["event_id"] = event_id
    ev["action_source"] = action_source
    if event_source_url:
        ev["event_source_url"] = event_source_url
    if referrer_url:
        ev["referrer_url"] = referrer_url
    if opt_out:
        ev["opt_out"] = True
    ev["user_data"] = dict(user_data)
    if custom_data:
        ev["custom_data"] = dict(custom_data)
    if app_data:
        ev["app_data"] = dict(app_data)
    if limited_data_use:
        ev["data_processing_options"] = ["LDU"]
        ev["data_processing_options_country"] = ldu_country
        ev["data_processing_options_state"] = ldu_state
    return ev


def event_problem(event: Mapping[str, Any]) -> str | None:
    """Why Meta would refuse this built event (and its whole batch), or None: the fields it
    requires for every event, for website events, and for purchases."""
    user = event.get("user_data") or {}
    if not user:
        return "user_data: no customer information (Meta needs at least one key)"
    if event.get("action_source") == "website":
        if not event.get("event_source_url"):
            return "event_source_url: required for website events"
        if not user.get("client_user_agent"):
            return "user_data.client_user_agent: required for website events"
    if event.get("action_source") == "app" and not event.get("app_data"):
        return "app_data: required for app events"
    if event.get("event_name") in PURCHASE_EVENTS:
        data = event.get("custom_data") or {}
        if data.get("value") is None or not data.get("currency"):
            return "custom_data: a Purchase needs value and currency"
    return None


def encode_event(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event)


def build_body(items: Sequence[bytes], test_event_code: str | None = None,
               partner_agent: str | None = None) -> bytes:
    """`{"data":[...],"test_event_code":...}` from events encoded at ingest (concatenated,
    not re-encoded); the test code sits at the top level, never in an event."""
    if not 1 <= len(items) <= MAX_BATCH:
        raise ValueError(f"data: {len(items)} events; Meta takes 1 to {MAX_BATCH} a request")
    body = b'{"data":[' + b",".join(items) + b"]"
    if test_event_code:
        body += b',"test_event_code":' + orjson.dumps(test_event_code)
    if partner_agent:
        body += b',"partner_agent":' + orjson.dumps(partner_agent)
    return body + b"}"
