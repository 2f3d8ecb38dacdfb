"""Pure validation of one /event/track/ request against TikTok's Events API v1.3 contract."""

from __future__ import annotations

import re
from typing import Any, Final

# TikTok's application codes used by the emulator (see the return-code table).
OK: Final = 0
NO_PERMISSION: Final = 40001
PARAM_ERROR: Final = 40002
RATE_LIMITED: Final = 40100
TOKEN_EMPTY: Final = 40104
TOKEN_INVALID: Final = 40105
SYSTEM_ERROR: Final = 50000

MSG_TOKEN_EMPTY: Final = "Access token is null, set it in http header with key Access-Token"
MSG_TOKEN_INVALID: Final = "Access token is incorrect or has been revoked."
MSG_RATE_LIMITED: Final = "Too many requests. Request QPS exceeds the limit."
MSG_SYSTEM_ERROR: Final = "System error. Please try again later."
MSG_EVENT_ID: Final = "Invalid value for event_id: not a valid string."

MAX_EVENTS: Final = 1000
# Anything at or above this is a millisecond (or later) timestamp, not Unix seconds.
MAX_EVENT_TIME: Final = 10_000_000_000
EVENT_SOURCES: Final = frozenset({"web", "app", "offline", "crm"})
CONTENT_TYPES: Final = frozenset({"product", "product_group"})

# Keys whose values must already be SHA-256 digests: receiving raw PII here is a privacy bug.
HASHED_USER_KEYS: Final = ("email", "phone", "external_id", "first_name", "last_name", "zip_code")
PLAIN_USER_KEYS: Final = (
    "ttclid",
    "ttp",
    "ip",
    "user_agent",
    "locale",
    "idfa",
    "idfv",
    "gaid",
)
# Sent normalised but never hashed: TikTok cannot match a hashed city.
PLACE_USER_KEYS: Final = ("city", "state", "country")
ATT_STATUSES: Final = frozenset(
    {"AUTHORIZED", "DENIED", "NOT_DETERMINED", "RESTRICTED", "NOT_APPLICABLE"}
)
STRING_PROPERTY_KEYS: Final = (
    "order_id",
    "shop_id",
    "description",
    "search_string",
    "query",
)
STRING_CONTENT_KEYS: Final = ("content_id", "content_name", "content_category", "brand")

NOT_STRING: Final = "Not a valid string"
NOT_INTEGER: Final = "Not a valid integer"
NOT_NUMBER: Final = "Not a valid number"
NOT_BOOLEAN: Final = "Not a valid boolean"
NOT_OBJECT: Final = "Not a valid object"
NOT_LIST: Final = "Not a valid list"
MISSING: Final = "Missing data for required field"
NOT_HASHED: Final = "Not a SHA-256 hex digest (64 lowercase hex characters); raw PII is refused"
NOT_PLAIN: Final = "Must not be hashed (TikTok takes city, state and country normalised, unhashed)"
NOT_NORMALISED: Final = "Must be normalised: lower-case letters and digits only"


# A compiled fullmatch measured ~3x faster than str.strip(charset) on 64-char digests.
_sha256_hex: Final = re.compile(r"[0-9a-f]{64}").fullmatch
_currency: Final = re.compile(r"[A-Z]{3}").fullmatch


def is_sha256_hex(value: str) -> bool:
    return _sha256_hex(value) is not None


def check_access_token(token: str | None, allowed: frozenset[str]) -> tuple[int, str] | None:
    """Return (code, message) when the Access-Token header is unacceptable, else None."""
    if token is None or not token.strip():
        return TOKEN_EMPTY, MSG_TOKEN_EMPTY
    # TikTok wants the raw token; "Bearer x" is a different (wrong) token, even if x is right.
    if token.startswith("Bearer ") or (allowed and token not in allowed):
        return TOKEN_INVALID, MSG_TOKEN_INVALID
    return None


def is_json_content_type(header: str | None) -> bool:
    if not header:
        return False
    media = header.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def no_permission_message(pixel_code: str) -> str:
    return (
        f"No permission to operate pixel code: {pixel_code}. "
        "You must be an admin or operator of this advertiser account."
    )


def validate_request(body: Any, max_errors: int = 20) -> list[str]:
    """Every contract violation in a parsed request body as "field.path: problem"; [] means valid.

    Messages name the field path and never echo the offending value, so raw PII that reaches
    the emulator does not spread into logs. Stops after `max_errors` to bound the work.
    """
    if type(body) is not dict:
        return [f"body: {NOT_OBJECT}"]
    errors: list[str] = []
    source = body.get("event_source")
    if source is None:
        errors.append(f"event_source: {MISSING}")
    elif source not in EVENT_SOURCES:
        errors.append("event_source: Must be one of: web, app, offline, crm")
    source_id = body.get("event_source_id")
    if source_id is None:
        errors.append(f"event_source_id: {MISSING}")
    elif type(source_id) is not str or not source_id:
        errors.append(f"event_source_id: {NOT_STRING}")
    for key in ("test_event_code", "partner_name"):
        if key in body and type(body[key]) is not str:
            errors.append(f"{key}: {NOT_STRING}")
    data = body.get("data")
    if data is None:
        errors.append(f"data: {MISSING}")
    elif type(data) is not list:
        errors.append(f"data: {NOT_LIST}")
    elif not data:
        errors.append("data: at least 1 event")
    elif len(data) > MAX_EVENTS:
        # The whole request is refused; checking 1000+ events would only add noise.
        errors.append(f"data: at most {MAX_EVENTS} events")
    else:
        for i, event in enumerate(data):
            if len(errors) >= max_errors:
                break
            _check_event(event, f"data.{i}", errors)
        _check_source_rules(source, data, errors)
    return errors[:max_errors]


def _check_event(ev: Any, path: str, errors: list[str]) -> None:
    if type(ev) is not dict:
        errors.append(f"{path}: {NOT_OBJECT}")
        return
    name = ev.get("event")
    if name is None:
        errors.append(f"{path}.event: {MISSING}")
    elif type(name) is not str or not name:
        errors.append(f"{path}.event: {NOT_STRING}")
    t = ev.get("event_time")
    if t is None:
        errors.append(f"{path}.event_time: {MISSING}")
    elif type(t) is not int:
        errors.append(f"{path}.event_time: {NOT_INTEGER} (Unix seconds)")
    elif t >= MAX_EVENT_TIME:
        errors.append(f"{path}.event_time: Must be Unix seconds, not milliseconds")
    elif t <= 0:
        errors.append(f"{path}.event_time: Must be a positive Unix timestamp in seconds")
    if "event_id" in ev:
        eid = ev["event_id"]
        if type(eid) is not str:
            errors.append(f"{path}.event_id: {MSG_EVENT_ID}")
        elif not eid:
            # An empty id would make every such event a duplicate of the first one.
            errors.append(f"{path}.event_id: Must not be empty")
    if "test_event_code" in ev:
        errors.append(f"{path}.test_event_code: Unknown field; it belongs at the top level")
    if "limited_data_use" in ev and type(ev["limited_data_use"]) is not bool:
        errors.append(f"{path}.limited_data_use: {NOT_BOOLEAN}")
    if "user" in ev:
        _check_fields(ev["user"], _USER_KINDS, f"{path}.user", errors)
    if "page" in ev:
        page = ev["page"]
        if type(page) is not dict:
            errors.append(f"{path}.page: {NOT_OBJECT}")
        else:
            for key in ("url", "referrer"):
                if key in page and type(page[key]) is not str:
                    errors.append(f"{path}.page.{key}: {NOT_STRING}")
    if "properties" in ev:
        _check_fields(ev["properties"], _PROPERTY_KINDS, f"{path}.properties", errors)
    for key in ("app", "ad", "lead", "device"):
        if key in ev and type(ev[key]) is not dict:
            errors.append(f"{path}.{key}: {NOT_OBJECT}")
    if "app" in ev and type(ev["app"]) is dict:
        _check_fields(ev["app"], _APP_KINDS, f"{path}.app", errors)
    if "ad" in ev and type(ev["ad"]) is dict:
        _check_fields(ev["ad"], _AD_KINDS, f"{path}.ad", errors)
    if "lead" in ev and type(ev["lead"]) is dict:
        _check_fields(ev["lead"], _LEAD_KINDS, f"{path}.lead", errors)


def _check_source_rules(source: Any, data: list[Any], errors: list[str]) -> None:
    """What each event source requires beyond the common shape (BUB track.go)."""
    required = {"crm": ("lead", "lead_id"), "app": ("app", "app_id")}.get(source)
    if required is None:
        return
    part, key = required
    for i, ev in enumerate(data):
        if type(ev) is not dict:
            continue
        obj = ev.get(part)
        value = obj.get(key) if type(obj) is dict else None
        if type(value) is not str or not value:
            errors.append(f"data.{i}.{part}.{key}: {MISSING} (event_source {source})")


# Field kinds, dispatched on the keys actually present: cheaper than probing every known key.
(_STR, _INT, _NUM, _HASHED, _STR_LIST, _CURRENCY, _CONTENT_TYPE, _CONTENTS, _PLACE, _BOOL,
 _ATT) = range(11)
_USER_KINDS: Final = {
    **dict.fromkeys(HASHED_USER_KEYS, _HASHED),
    **dict.fromkeys(PLAIN_USER_KEYS, _STR),
    **dict.fromkeys(PLACE_USER_KEYS, _PLACE),
    "att_status": _ATT,
}
_APP_KINDS: Final = dict.fromkeys(("app_id", "app_name", "app_version"), _STR)
_AD_KINDS: Final = {
    **dict.fromkeys(
        ("callback", "campaign_id", "ad_id", "creative_id", "attribution_type",
         "attribution_provider"),
        _STR,
    ),
    "is_retargeting": _BOOL,
    "attributed": _BOOL,
}
_LEAD_KINDS: Final = dict.fromkeys(("lead_id", "lead_event_source"), _STR)
_place: Final = re.compile(r"[a-z0-9]*").fullmatch
_PROPERTY_KINDS: Final = {
    **dict.fromkeys(STRING_PROPERTY_KEYS, _STR),
    "contents": _CONTENTS,
    "currency": _CURRENCY,
    "value": _NUM,
    "content_type": _CONTENT_TYPE,
    "num_items": _INT,
    "content_ids": _STR_LIST,
}
_CONTENT_KINDS: Final = {
    **dict.fromkeys(STRING_CONTENT_KEYS, _STR),
    "price": _NUM,
    "quantity": _INT,
}


def _check_fields(obj: Any, kinds: dict[str, int], path: str, errors: list[str]) -> None:
    if type(obj) is not dict:
        errors.append(f"{path}: {NOT_OBJECT}")
        return
    for key, value in obj.items():
        kind = kinds.get(key)
        if kind is None:  # unknown extra keys are tolerated, as TikTok passes them through
            continue
        t = type(value)
        if kind == _STR:
            if t is not str:
                errors.append(f"{path}.{key}: {NOT_STRING}")
        elif kind == _HASHED:
            # "" and [] mean "not given": Segment sends them for every key it has no value for.
            if t is str:
                if value and _sha256_hex(value) is None:
                    errors.append(f"{path}.{key}: {NOT_HASHED}")
            elif t is list:
                for j, item in enumerate(value):
                    if type(item) is not str:
                        errors.append(f"{path}.{key}.{j}: {NOT_STRING}")
                    elif _sha256_hex(item) is None:
                        errors.append(f"{path}.{key}.{j}: {NOT_HASHED}")
            else:
                errors.append(f"{path}.{key}: Not a valid string or list of strings")
        elif kind == _PLACE:
            if t is not str:
                errors.append(f"{path}.{key}: {NOT_STRING}")
            elif _sha256_hex(value) is not None:
                errors.append(f"{path}.{key}: {NOT_PLAIN}")
            elif _place(value) is None:
                errors.append(f"{path}.{key}: {NOT_NORMALISED}")
        elif kind == _BOOL:
            if t is not bool:
                errors.append(f"{path}.{key}: {NOT_BOOLEAN}")
        elif kind == _ATT:
            if value not in ATT_STATUSES:
                errors.append(f"{path}.{key}: Must be one of: " + ", ".join(sorted(ATT_STATUSES)))
        elif kind == _NUM:
            # bool is a subclass of int in Python, but true/false is not a number in JSON.
            if t is not int and t is not float:
                errors.append(f"{path}.{key}: {NOT_NUMBER}")
        elif kind == _INT:
            if t is not int:
                errors.append(f"{path}.{key}: {NOT_INTEGER}")
        elif kind == _CONTENTS:
            if t is not list:
                errors.append(f"{path}.{key}: {NOT_LIST}")
            else:
                for j, item in enumerate(value):
                    _check_content(item, path, j, errors)
        elif kind == _CURRENCY:
            if t is not str or _currency(value) is None:
                errors.append(f"{path}.{key}: Must be an ISO 4217 code (3 uppercase letters)")
        elif kind == _CONTENT_TYPE:
            if value not in CONTENT_TYPES:
                errors.append(f"{path}.{key}: Must be one of: product, product_group")
        elif kind == _STR_LIST:
            if t is not list:
                errors.append(f"{path}.{key}: {NOT_LIST}")
            else:
                for j, item in enumerate(value):
                    if type(item) is not str:
                        errors.append(f"{path}.{key}.{j}: {NOT_STRING}")


def _check_content(item: Any, path: str, j: int, errors: list[str]) -> None:
    # Hot path (one call per line item): the error path string is built only on failure.
    if type(item) is not dict:
        errors.append(f"{path}.contents.{j}: {NOT_OBJECT}")
        return
    for key, value in item.items():
        kind = _CONTENT_KINDS.get(key)
        if kind is None:
            continue
        t = type(value)
        if (
            (kind == _STR and t is not str)
            or (kind == _NUM and t is not int and t is not float)
            or (kind == _INT and t is not int)
        ):
            _check_fields(item, _CONTENT_KINDS, f"{path}.contents.{j}", errors)
            return
