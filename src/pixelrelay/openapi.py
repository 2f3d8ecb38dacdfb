"""The OpenAPI 3.1 document of the gateway's HTTP interface, served at GET /openapi.json.

Limits, key names and enumerations come from the modules that enforce them, so the document
follows the code; tests/integration/test_openapi.py checks real requests and answers
against it. Request objects are open (unknown keys are dropped with a warning, never
refused); answers pixelrelay builds itself are closed (`additionalProperties: false`), so an
answer that gains a key without this document fails that test.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pixelrelay import __version__
from pixelrelay.destinations import REGISTRY
from pixelrelay.diagnostics import endpoints as diagnostics_endpoints
from pixelrelay.diagnostics import report
from pixelrelay.model import ACTION_SOURCES, Channel, ConsentState, DeliveryState, IdKey, Source
from pixelrelay.pipeline import extras, parse, readers, user
from pixelrelay.pipeline import properties as props
from pixelrelay.pipeline.enrich import MAX_TOKEN_LEN, TOKEN_KINDS
from pixelrelay.sources import api, browser, graph_api, meta_map, tiktok_compat
from pixelrelay.sources.browser_rules import CONSENT_SOURCES, SESSION_COOKIE, click_cookie
from pixelrelay.web import credential_guard
from pixelrelay.web.http import MAX_BODY_BYTES

Schema = dict[str, Any]
JSON_TYPE = "application/json"
HTML_TYPE = "text/html"
# What the TikTok-compatible endpoint answers in `code` (always with HTTP 200, as TikTok).
TIKTOK_CODES = {0: "OK; `data.warnings` names any field that was dropped",
                40002: "the request is refused whole; `message` names `data.<i>.<field>`",
                40104: "no Access-Token header",
                40105: "the Access-Token is not a server source key",
                40100: "too many failed Access-Tokens from this address (HTTP 429)",
                50000: "the store could not commit; retry later"}
_NUMBER_TEXT = r"^\s*\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$"
_ISO_TIME = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}(?::[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?)?"
             r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?")
_TIME_TEXT = rf"^\s*(?:[0-9]+(?:\.[0-9]*)?|{_ISO_TIME})\s*$"
_SESSION_ID = r"^s_[0-9a-f]{32}$"
# Consent Mode's storage purposes that do not concern advertising (pipeline/parse.py).
CONSENT_MODE_IGNORED = ("analytics_storage", "functionality_storage", "personalization_storage",
                        "security_storage")


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def or_blank(schema: Schema) -> Schema:
    """`schema`, or a blank value, which the parser reads as an absent field."""
    return {"anyOf": [schema, ref("Blank")]}


def any_case(words: Iterable[str]) -> str:
    """A pattern matching one of `words` in any case with surrounding whitespace, as the
    parser compares them after strip() and lower()/upper()."""
    def letters(word: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c)
                       for c in word)
    return r"^\s*(?:" + "|".join(letters(w) for w in words) + r")\s*$"


def text(cap: int, description: str, *, cut: bool = False) -> Schema:
    """An optional string (blank is absent); longer than `cap` is refused, or cut when `cut`."""
    if cut:
        return or_blank({"type": ["string", "null"],
                         "description": f"{description} Longer values are cut to {cap} "
                                        "characters."})
    return or_blank({"type": ["string", "null"], "maxLength": cap, "description": description})


def ident(cap: int, description: str) -> Schema:
    """An id: a string, or an integer taken as its decimal string (TikTok wants strings)."""
    return {"type": ["string", "integer", "null"], "maxLength": cap, "description": description}


def flag(description: str) -> Schema:
    return or_blank({"type": ["boolean", "null"], "description": description})


def closed(properties: dict[str, Schema], required: Iterable[str] = (), *,
           description: str = "") -> Schema:
    """An answer object pixelrelay builds itself: exactly these keys."""
    out: Schema = {"type": "object", "properties": properties, "required": list(required),
                   "additionalProperties": False}
    if description:
        out["description"] = description
    return out


def array(items: Schema, description: str = "", **limits: int) -> Schema:
    out: Schema = {"type": "array", "items": items, **limits}
    if description:
        out["description"] = description
    return out


INT: Schema = {"type": "integer", "minimum": 0}
NUM: Schema = {"type": "number"}
STR: Schema = {"type": "string"}
OPT_STR: Schema = {"type": ["string", "null"]}
OPT_NUM: Schema = {"type": ["number", "null"]}
OPT_INT: Schema = {"type": ["integer", "null"]}


# -- requests ------------------------------------------------------------------------------


def _event_fields() -> dict[str, Schema]:
    """Every top-level key the parser reads (pipeline/parse.py TOP_KEYS)."""
    sources = [s.value for s in Source]
    return {
        "event": {"type": "string", "maxLength": 100, "pattern": r"\S",
                  "description": "Required. Any name: the destination's event_map, then the "
                                 "default mapping, give the TikTok name; at most 100 "
                                 "characters after trimming.",
                  "examples": ["Purchase", "AddToCart"]},
        "event_id": or_blank({"type": ["string", "integer"], "maxLength": 256,
                              "description": "TikTok deduplicates on it. Missing: "
                                             "`ord_<order_id>_<snake TikTok name>` when "
                                             "properties.order_id is set, else a UUID; "
                                             "returned in `event_ids`."}),
        "timestamp": or_blank(ref("Timestamp")),
        "event_time": or_blank({"allOf": [ref("Timestamp")],
                                "description": "TikTok's name of `timestamp`, read when "
                                               "`timestamp` is null or absent."}),
        "source": or_blank({"type": "string", "pattern": any_case(sources),
                            "description": f"One of {', '.join(sources)} (any case; default "
                                           "web): the destination's id for that source "
                                           "receives it, or it is filtered when it has none."}),
        "session_id": text(256, f"The tag's session (the {SESSION_COOKIE} cookie): restores "
                                "the session's click and browser ids, IP, user agent and "
                                "consent."),
        "order_source": text(64, "Where the order was placed (Shopify's source_name); see "
                                 "a destination's exclude_order_sources."),
        "action_source": or_blank({
            "type": "string", "pattern": any_case(sorted(ACTION_SOURCES)),
            "description": "Where the conversion happened, finer than `source` (a phone "
                           "call, a chat, a store...): a destination that tells these apart "
                           "(Meta's action_source) sends it; the others go by `source`. "
                           "Case-insensitive."}),
        "user": or_blank(ref("User")),
        "page": or_blank(ref("Page")),
        "properties": or_blank(ref("Properties")),
        "consent": or_blank(ref("Consent")),
        "app": or_blank(ref("App")),
        "ad": or_blank(ref("Ad")),
        "lead": or_blank(ref("Lead")),
        "device": or_blank(ref("Device")),
        "limited_data_use": flag("Forced to true when consent.ad_personalization is denied."),
        "test_event_code": text(64, "This event goes to TikTok's Test Events, in requests "
                                    "of its own."),
    }


def _if_source(pattern: str, then: str) -> Schema:
    return {"if": {"required": ["source"], "properties": {"source": {
        "type": "string", "pattern": pattern}}}, "then": ref(then)}


def _request_schemas() -> dict[str, Schema]:
    fields = _event_fields()
    shared = [k for k in fields if k not in ("timestamp", "source", "test_event_code")]
    dropped = "A key pixelrelay does not know is dropped with a warning; the event is kept."
    match_key = "normalised and SHA-256 hashed (a 64-hex value passes as hashed)"
    return {
        "Blank": {
            "description": "null, a blank string, [] or {}: the same as an absent field where "
                           "a field says so (objects, ids, numbers, match keys).",
            "anyOf": [{"type": "null"}, {"type": "string", "pattern": r"^\s*$"},
                      {"type": "array", "maxItems": 0}, {"type": "object", "maxProperties": 0}]},
        "PresentId": {"description": "An id that is given: an integer or a non-blank string.",
                      "anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"\S"}]},
        "Timestamp": {
            "description": "Unix seconds, Unix milliseconds (any value above 1e11), or an ISO "
                           "8601 date-time (UTC when it names no zone). At most "
                           f"{parse.MAX_FUTURE_S} s ahead of the server clock, and refused "
                           "when older than every destination's max_age_days (default 7).",
            "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1e14},
                      {"type": "string", "pattern": _TIME_TEXT}],
            "examples": [1776943380, 1776943380000, "2026-04-23T11:23:00Z"]},
        "Amount": {"description": "A non-negative number; a numeric string (\"129.95\") is "
                                  "taken, without currency symbol or thousands separator.",
                   "anyOf": [{"type": "number", "minimum": 0},
                             {"type": "string", "pattern": _NUMBER_TEXT}]},
        "Count": {"description": "A non-negative integer; a string of digits is taken.",
                  "anyOf": [{"type": "integer", "minimum": 0, "maximum": readers.MAX_COUNT},
                            {"type": "string", "pattern": r"^\s*[0-9]{1,16}\s*$"}]},
        "MatchKey": {
            "description": f"A string or a list of up to {user.MAX_IDS_PER_KEY}; blank items "
                           "are skipped; an unusable value is dropped with a warning (never "
                           "refused), and no value is ever echoed back.",
            "anyOf": [{"type": ["string", "null"]},
                      array({"anyOf": [STR, ref("Blank")]}, maxItems=user.MAX_IDS_PER_KEY)]},
        "ConsentAnswer": {"description": "granted or denied (any case), or a boolean.",
                          "anyOf": [{"type": "boolean"},
                                    {"type": "string",
                                     "pattern": any_case(s.value for s in ConsentState)},
                                    ref("Blank")]},
        "Event": {
            "type": "object", "required": ["event"], "properties": fields,
            "additionalProperties": True,
            "description": "One event. Only `event` is required. " + dropped +
                           " A known field with a wrong type or value refuses the event, "
                           "naming the field.",
            "allOf": [_if_source(any_case(["crm"]), "CrmEvent"),
                      _if_source(any_case(["app"]), "AppEvent")],
            "examples": [{
                "event": "Purchase", "event_id": "ord_10492_complete_payment",
                "timestamp": 1776943380, "source": "web", "session_id": "s_8f2c",
                "user": {"email": "Customer@Example.com", "phone": "+49 170 1234567",
                         "external_id": "cust_34982", **_example_click(),
                         "ip": "203.0.113.42", "user_agent": "Mozilla/5.0 ..."},
                "page": {"url": "https://shop.example/thanks"},
                "properties": {"value": 129.95, "currency": "EUR", "order_id": "10492",
                               "content_type": "product",
                               "contents": [{"content_id": "SKU-481", "quantity": 1,
                                             "price": 129.95}]},
                "consent": {"marketing": "granted", "region": "DE"}}]},
        "CrmEvent": {"description": "A source crm event needs lead.lead_id.",
                     "required": ["lead"], "properties": {"lead": {
                         "type": "object", "required": ["lead_id"],
                         "properties": {"lead_id": ref("PresentId")}}}},
        "AppEvent": {"description": "A source app event needs app.app_id.",
                     "required": ["app"], "properties": {"app": {
                         "type": "object", "required": ["app_id"],
                         "properties": {"app_id": ref("PresentId")}}}},
        "EventBatch": {
            "type": "object", "required": ["events"],
            "properties": {"events": array(ref("Event"), minItems=1, maxItems=api.MAX_EVENTS)},
            "additionalProperties": True,
            "description": f"Up to {api.MAX_EVENTS} events; each is accepted or rejected on "
                           "its own. Keys beside `events` are dropped with a warning."},
        "EventsRequest": {"anyOf": [ref("EventBatch"), {
            "allOf": [ref("Event"), {"not": {"required": ["events"]}}]}]},
        "User": {
            "type": "object", "additionalProperties": True, "description": dropped,
            "properties": {
                "email": {"allOf": [ref("MatchKey")], "description": f"Trimmed, lower-cased, "
                                                                     f"{match_key}."},
                "phone": {"allOf": [ref("MatchKey")],
                          "description": f"E.164 (+<country code>..., or a destination's "
                                         f"default_phone_region), {match_key}."},
                "external_id": {"allOf": [ref("MatchKey")], "description": match_key},
                # The click and browser ids the destination types declare.
                **{k.key: text(k.max_len, k.description) for k in _declared_ids()},
                "ip": {"description": "An IPv4 or IPv6 address.", "anyOf": [
                    {"type": "null"}, {"type": "string", "pattern": r"^\s*$"},
                    {"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]},
                "user_agent": text(1024, "The browser's user agent.", cut=True),
                "locale": text(35, "A BCP 47 locale such as de-DE."),
                **{k: {"allOf": [ref("MatchKey")],
                       "description": f"Normalised and SHA-256 hashed ({how})."}
                   for k, how in (("first_name", "trimmed, lower-cased, spaces removed"),
                                  ("last_name", "trimmed, lower-cased, spaces removed"),
                                  ("zip_code", "spaces and dashes removed, lower-cased"),
                                  ("idfa", "app events; upper-cased first"),
                                  ("gaid", "app events; lower-cased first"))},
                **{k: {"allOf": [ref("MatchKey")],
                       "description": "Only [a-z0-9] kept, lower-cased, never hashed "
                                      "(TikTok's rule); the first usable value of a list."}
                   for k in ("city", "state", "country")},
                "idfv": text(64, "App events: the vendor id, as given."),
                "att_status": or_blank({"type": "string", "pattern": any_case(
                    user.ATT_STATUSES), "description": "App events: one of " +
                    ", ".join(user.ATT_STATUSES) + " (any case)."}),
            }},
        "Page": {"type": "object", "additionalProperties": True, "description": dropped,
                 "properties": {"url": text(4096, "The page's URL; query parameters that "
                                                  "carry an email or phone are removed.",
                                            cut=True),
                                "referrer": text(4096, "The referring URL.", cut=True)}},
        "Properties": {
            "type": "object", "additionalProperties": True,
            "description": "Blank values are skipped; any key not listed passes through to "
                           "TikTok unchanged (an `email` or `phone` key becomes a hashed match "
                           "key instead).",
            "properties": {
                "value": or_blank(ref("Amount")),
                "currency": or_blank({"type": "string", "pattern": any_case(
                    sorted(props.CURRENCIES)), "description": "An ISO 4217 code (any case).",
                    "examples": ["EUR", "USD"]}),
                "contents": or_blank({"anyOf": [ref("Content"), array(
                    or_blank(ref("Content")), maxItems=props.MAX_CONTENTS)],
                    "description": "The items; one item may be sent as an object."}),
                "content_type": or_blank({"type": "string", "pattern": r"^\s*(?:" + "|".join(
                    props.CONTENT_TYPES) + r")\s*$"}),
                "content_ids": or_blank({"anyOf": [
                    {"type": ["string", "integer"], "maxLength": 256},
                    array(or_blank({"type": ["string", "integer"], "maxLength": 256}))]}),
                "num_items": or_blank(ref("Count")),
                "order_id": or_blank({"type": ["string", "integer"], "maxLength": 128,
                                      "description": "Derives the event_id when none is "
                                                     "given."}),
                "shop_id": or_blank({"type": ["string", "integer"], "maxLength": 128}),
                "query": or_blank({"type": "string", "maxLength": 1000,
                                   "description": "Also sent as search_string."}),
                "search_string": or_blank({"type": "string", "maxLength": 1000}),
                "description": or_blank({"type": ["string", "number"],
                                         "description": "Cut to 1000 characters."}),
            }},
        "Content": {
            "type": "object", "additionalProperties": True,
            "description": "Blank values are skipped; other keys pass through.",
            "properties": {
                "content_id": or_blank({"type": ["string", "integer"], "maxLength": 256}),
                "quantity": or_blank(ref("Count")),
                "price": or_blank(ref("Amount")),
                **{k: or_blank({"type": ["string", "number"],
                                "description": "Cut to 500 characters."})
                   for k in ("content_name", "content_category", "brand")}}},
        "Consent": {
            "type": "object", "additionalProperties": True, "description": dropped,
            "properties": {
                "marketing": ref("ConsentAnswer"),
                "ad_user_data": ref("ConsentAnswer"),
                "ad_personalization": {"allOf": [ref("ConsentAnswer")],
                                       "description": "denied forces limited_data_use."},
                "ad_storage": {"allOf": [ref("ConsentAnswer")],
                               "description": "Google Consent Mode's name: read as "
                                              "`marketing` when that is absent."},
                **{k: {"description": "Google Consent Mode: read and ignored."}
                   for k in CONSENT_MODE_IGNORED},
                "region": text(8, "Where the visitor is (ISO 3166 code); "
                                  "[consent] require_in_regions applies to it. Missing: "
                                  "a two-letter user.country."),
            }},
        "App": {
            "type": "object", "additionalProperties": True, "description": dropped,
            "properties": {"app_id": ident(256, "The App Store id or Google Play package."),
                           "app_name": text(256, "The app's name.", cut=True),
                           "app_version": ident(64, "The app's version.")},
            "if": {"anyOf": [
                {"required": ["app_name"], "properties": {"app_name": {
                    "type": "string", "pattern": r"\S"}}},
                {"required": ["app_version"], "properties": {"app_version": ref("PresentId")}}]},
            "then": {"required": ["app_id"], "properties": {"app_id": ref("PresentId")}}},
        "Ad": {
            "type": "object", "additionalProperties": True,
            "description": "App attribution, passed on; on a web event `callback` stands in "
                           "for a missing " + ", ".join(
                               f"user.{k.key}" for k in _declared_ids() if k.ad_callback)
                           + ". " + dropped,
            "properties": {"callback": text(1024, "The ad's callback (click id)."),
                           **{k: ident(256, f"TikTok's {k}.")
                              for k in ("campaign_id", "ad_id", "creative_id")},
                           "is_retargeting": flag("A retargeting campaign."),
                           "attributed": flag("Attributed to TikTok."),
                           "attribution_type": text(64, "The attribution type."),
                           "attribution_provider": text(128, "The attribution provider.")}},
        "Lead": {
            "type": "object", "additionalProperties": True, "description": dropped,
            "properties": {"lead_id": ident(256, "The lead id from TikTok's lead export."),
                           "lead_event_source": text(128, "The CRM the lead came from.")},
            "if": {"required": ["lead_event_source"], "properties": {"lead_event_source": {
                "type": "string", "pattern": r"\S"}}},
            "then": {"required": ["lead_id"], "properties": {"lead_id": ref("PresentId")}}},
        "Device": {
            "type": "object", "maxProperties": extras.MAX_DEVICE_KEYS,
            "description": "Client hints (architecture, model, platform, mobile...), passed "
                           "on; strings are cut to 256 characters.",
            "additionalProperties": or_blank({"anyOf": [
                {"type": ["string", "number", "boolean"]},
                array(STR, maxItems=32)]})},
        "TikTokTrackRequest": {
            "type": "object", "required": list(tiktok_compat.REQUIRED_KEYS),
            "additionalProperties": True,
            "description": "TikTok's own body (Events API v1.3). The request is accepted or "
                           "refused whole; unknown keys are dropped (named in data.warnings).",
            "properties": {
                "event_source": {"enum": [s.value for s in Source]},
                tiktok_compat.SOURCE_ID: {
                    "description": tiktok_compat.SOURCE_ID_DOC,
                    "anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "integer"}]},
                "test_event_code": {"type": ["string", "null"],
                                    "description": "Every event of the request goes to Test "
                                                   "Events."},
                "partner_name": {"description": "Accepted; pixelrelay sends its own."},
                "data": array(ref("TikTokEvent"), minItems=1,
                              maxItems=tiktok_compat.MAX_EVENTS)},
            "allOf": [
                {"if": {"properties": {"event_source": {"const": src}}},
                 "then": {"properties": {"data": {"items": ref(then)}}}}
                for src, then in (("crm", "CrmEvent"), ("app", "AppEvent"))]},
        "MetaEventsRequest": {
            "type": "object", "required": ["data"], "additionalProperties": True,
            "description": "Meta's Conversions API body (Graph API). Accepted or refused "
                           "whole; unknown keys are dropped (named in `messages`).",
            "properties": {
                "data": {"anyOf": [
                    array(ref("MetaServerEvent"), minItems=1, maxItems=meta_map.MAX_EVENTS),
                    {"type": "string", "description": "The array JSON-encoded (a form's)."}]},
                "test_event_code": {"type": "string", "description": "Every event goes to "
                                    "Test Events, at Meta and at TikTok."},
                "access_token": {"type": "string",
                                 "description": "A server source key (or in the query, or "
                                                "as Bearer)."},
                **{k: {"description": "Accepted and ignored."}
                   for k in sorted(meta_map.TOP_KEYS - {"data", "test_event_code",
                                                        "access_token"})}}},
        "MetaEventsForm": {
            "type": "object", "required": ["data"], "additionalProperties": True,
            "description": "The same parameters as a form (Meta's SDK, RudderStack, curl -F).",
            "properties": {"data": {"type": "string", "description": "The events array, "
                                    "JSON-encoded; each event may itself be a JSON string."},
                           "access_token": STR, "test_event_code": STR}},
        "MetaServerEvent": {"anyOf": [
            {"type": "string", "description": "An event JSON-encoded (as Meta's SDK sends)."},
            {"type": "object", "additionalProperties": True,
             "required": ["event_name", "event_time", "action_source", "user_data"],
             "description": "One server event. user_data em/ph/external_id (string or list, "
                            "plain or SHA-256), fn/ln/ct/st/zp/country (the first value), "
                            "client_ip_address, client_user_agent, fbc, fbp; other keys are "
                            "dropped with a message. custom_data passes as properties "
                            "(contents' id/item_price/title/category as content_id/price/"
                            "content_name/content_category).",
             "properties": {
                 "event_name": {"type": "string"},
                 "event_time": {"type": ["integer", "string"],
                                "description": "Unix seconds (a numeric string is taken)."},
                 "event_id": {"type": ["string", "integer"]},
                 "action_source": {"enum": list(meta_map.SOURCES)},
                 "event_source_url": STR, "referrer_url": STR,
                 "user_data": {"type": "object"}, "custom_data": {"type": ["object", "null"]},
                 "data_processing_options": array(STR, "[\"LDU\"]: limited data use."),
                 "opt_out": {"type": "boolean", "description": "true: consent "
                             "ad_personalization denied (attribution only)."},
                 "app_data": {"type": "object", "description": "Required for app events: "
                              "extinfo[1] (the package name) is the app id."}}}]},
        "TikTokEvent": {
            "type": "object", "required": ["event", "event_time"], "additionalProperties": True,
            "description": "One data[] item: the fields of Event (same rules), with TikTok's "
                           "integer event_time.",
            "properties": {
                **{k: {"$ref": f"#/components/schemas/Event/properties/{k}"} for k in shared},
                "event_time": {"type": "integer", "exclusiveMinimum": 0, "maximum": 1e14,
                               "description": "Unix seconds (milliseconds are taken too)."},
                "timestamp": {"description": "Ignored: event_time is the event's time."},
                "source": {"description": "Ignored: the request's event_source applies."},
                "test_event_code": {"description": "Used when the request has none; ignored "
                                                   "unless a non-blank string."}}},
        "CollectHit": {
            "type": "object", "additionalProperties": True,
            "description": "One hit of the browser tag: a track (with `event`: an Event, "
                           "validated as such), identify, link, consent or page view.",
            "properties": {
                "k": {"type": "string", "description": "The site key (or X-Pixelrelay-Key)."},
                "sid": {"description": "The session id the tag proposes for its page load "
                                       "(`s_` + 32 hex); the cookie's wins, anything else "
                                       "is ignored."},
                "link": {"type": ["object", "null"], "minProperties": 1,
                         "additionalProperties": False,
                         "properties": {k: {"type": "string", "pattern": r"\S",
                                            "maxLength": MAX_TOKEN_LEN}
                                        for k in TOKEN_KINDS},
                         "description": "Ties a Shopify cart or checkout to the session."},
                "identify": {"description": "{email, external_id}: hashed and linked to the "
                                            "session; other keys and non-objects are "
                                            "ignored."},
                "consent": {"description": "The visitor's current answer (read leniently: "
                                           "an unreadable answer is no answer)."},
                "consent_source": {"description": "How consent was given: " +
                                                  " or ".join(CONSENT_SOURCES) + "."}},
            "if": {"required": ["event"]}, "then": ref("Event")},
    }


# -- answers -------------------------------------------------------------------------------


def _answer_schemas() -> dict[str, Schema]:
    field_error = ref("FieldError")
    event_ids = array({"type": ["string", "null"]},
                      "One per input event, in order: the given or derived id (null for a "
                      "refused event that has none).")
    warnings = array(STR, "What ingest dropped or could not verify, by field "
                          "(`events[<i>] <field>: <why>`); never a value.")
    ingest = "#/components/schemas/IngestResult/properties/"
    return {
        "FieldError": closed({"field": {"type": "string", "description": "A dotted path such "
                                                                       "as user.email."},
                              "reason": STR}, ["field", "reason"]),
        "Rejection": closed({"index": INT, "errors": array(field_error, minItems=1)},
                            ["index", "errors"]),
        "IngestResult": closed({
            "accepted": INT, "duplicates": {**INT, "description": "Repeats of an event_id "
                                                                   "already held (48 h)."},
            "rejected": array(ref("Rejection")), "event_ids": event_ids,
            "warnings": warnings}, ["accepted", "duplicates", "rejected", "event_ids"],
            description="202: every accepted event is committed to disk."),
        "Problem": closed({"error": {"type": "string", "description": "A stable code."},
                           "reason": {"type": "string", "description": "What to fix."}},
                          ["error", "reason"]),
        "ShopifyAnswer": closed({
            "accepted": INT, "duplicates": INT, "event_ids": array(STR),
            "warnings": {"$ref": ingest + "warnings"},
            "ignored": {"type": "string", "description": "Why the topic maps to no event."}},
            ["accepted", "duplicates", "event_ids"]),
        "ShopifyRejected": closed({
            "error": {"const": "rejected"}, "reason": STR, "event_ids": event_ids,
            "errors": array(field_error)}, ["error", "reason", "event_ids", "errors"]),
        "CollectAnswer": closed({
            "session_id": {"type": "string", "pattern": _SESSION_ID},
            "linked": array({"enum": list(TOKEN_KINDS)}, "The tokens tied to the session."),
            "identified": {**INT, "description": "Identities linked to the session."},
            "consent": {"const": "denied", "description": "The visitor said no: recorded, "
                                                         "nothing else kept, no cookie."},
            "reason": {"const": "consent required",
                       "description": "consent_required and no answer yet: nothing kept."},
            **{k: {"$ref": ingest + k}
               for k in ("accepted", "duplicates", "rejected", "event_ids", "warnings")}},
            description="The session (unless consent is required and not given), and the "
                        "IngestResult fields when the hit carried an event."),
        "TikTokAnswer": closed({
            "code": {"enum": list(TIKTOK_CODES),
                     "description": "; ".join(f"{c}: {d}" for c, d in TIKTOK_CODES.items())},
            "message": STR, "request_id": STR,
            "data": closed({"warnings": array(STR, "Dropped fields, as data.<i>.<field>.")})},
            ["code", "message", "request_id", "data"]),
        "MetaAnswer": closed({
            "events_received": INT,
            "messages": array(STR, "What was dropped or left out for a destination, as "
                                   "data[<i>].<field>; never a value."),
            "fbtrace_id": STR}, ["events_received", "messages", "fbtrace_id"]),
        "GraphError": closed({"error": closed({
            "message": STR, "type": {"enum": [graph_api.OAUTH, graph_api.METHOD]},
            "code": {"type": "integer", "description": "104/190: the token; 100: a parameter "
                     "(error_subcode 2804003: too old, 33: unknown pixel); 2: retry later; "
                     "4: throttled."},
            "error_subcode": {"type": "integer"}, "is_transient": {"type": "boolean"},
            "error_user_title": STR, "error_user_msg": STR, "fbtrace_id": STR},
            ["message", "type", "code", "fbtrace_id"])}, ["error"]),
        "Health": closed({"status": {"const": "ok"}, "version": STR}, ["status", "version"]),
        "Resumed": closed({"destination": STR, "resumed": {"const": True}},
                          ["destination", "resumed"]),
        "DeliveryLog": closed({
            "event_id": OPT_STR, "order_id": STR,
            "deliveries": array(ref("Delivery")),
            "rejected": array(ref("IngestRefusal"), "Refusals at ingest of that event_id or "
                                                    "order, newest first.")},
            ["event_id", "deliveries", "rejected"]),
        "Delivery": closed({
            "destination": STR, "event_id": STR, "dest_event": STR,
            "state": {"enum": [s.value for s in DeliveryState]},
            "attempts": INT, "last_http_status": OPT_INT, "last_code": OPT_INT,
            "last_message": OPT_STR, "last_request_id": OPT_STR, "dead_reason": OPT_STR,
            "reason": {**OPT_STR, "description": "Why suppressed or filtered."},
            "created_at": NUM, "updated_at": NUM, "next_attempt_at": OPT_NUM},
            ["destination", "event_id", "dest_event", "state", "attempts", "last_http_status",
             "last_code", "last_message", "last_request_id", "dead_reason", "reason",
             "created_at", "updated_at", "next_attempt_at"]),
        "IngestRefusal": closed({
            "at": NUM, "channel": {"enum": [c.value for c in Channel]}, "event": STR,
            "event_id": OPT_STR, "order_id": OPT_STR,
            "problems": array(field_error, "Digits in reasons are masked.")},
            ["at", "channel", "event", "event_id", "order_id", "problems"]),
        "Trace": closed({
            "event_id": STR, "event": ref("StoredEvent"),
            "deliveries": array(ref("TraceDelivery"), minItems=1),
            "copies": array(closed({
                "channel": {"enum": [c.value for c in Channel]}, "at": NUM,
                "outcome": {"enum": ["first", "merged", "duplicate"]}},
                ["channel", "at", "outcome"]), "Every copy received of this event_id.")},
            ["event_id", "event", "deliveries", "copies"]),
        "TraceDelivery": closed({
            "destination": STR, "dest_event": STR,
            "state": {"enum": [s.value for s in DeliveryState]},
            "attempts": {"type": "integer", "description": "Requests that carried this event "
                         "(a refused batch is split and sent again)."},
            "destination_paused": {"type": "boolean", "description": "The destination is "
                                   "paused now: a pending event waits for its resume."},
            "paused_reason": OPT_STR, "last_code": OPT_INT, "last_message": OPT_STR,
            "last_request_id": OPT_STR,
            "dead_reason": OPT_STR, "reason": OPT_STR, "accepted_at": NUM,
            "delivered_at": OPT_NUM, "latency_s": OPT_NUM,
            "payload": {"type": ["object", "null"], "additionalProperties": True,
                        "description": "The data[] item as sent to TikTok (hashed), in "
                                       "TikTok's Events API v1.3 shape."},
            "log": array(closed({
                "at": NUM, "http_status": OPT_INT, "code": OPT_INT, "message": OPT_STR,
                "request_id": OPT_STR, "latency_ms": NUM, "outcome": STR,
                "batch_size": INT}, ["at", "http_status", "code", "message", "request_id",
                                     "latency_ms", "outcome", "batch_size"]),
                "Every request that carried this event.")},
            ["destination", "dest_event", "state", "attempts", "destination_paused",
             "paused_reason", "last_code", "last_message",
             "last_request_id", "dead_reason", "reason", "accepted_at", "delivered_at",
             "latency_s", "payload", "log"]),
        "StoredEvent": _stored_event(),
    }


def _declared_ids() -> list[IdKey]:
    """The click and browser ids of every registered destination type, in registry order."""
    return [k for plugin in REGISTRY.values() for k in plugin.ids]


def _attribution_click_ids() -> list[str]:
    """The ad click ids (user keys) the registered types tie a purchase to its ad click by."""
    return sorted({p.attribution_click_id for p in REGISTRY.values() if p.attribution_click_id})


def _example_click() -> dict[str, str]:
    """An example's landing click id: the first declared one's (a made-up value)."""
    return next(({k.key: "E.C.P.CvQBA"} for k in _declared_ids() if k.url_param), {})


def _stored_event() -> Schema:
    """The server's copy of an event as the trace shows it: validated and hashed."""
    consent = {"type": ["string", "null"], "enum": [s.value for s in ConsentState] + [None]}
    scalars = (*(k.key for k in _declared_ids()), "ip", "user_agent", "locale", "first_name",
               "last_name", "zip_code", "city", "state", "country", "idfa", "idfv", "gaid",
               "att_status")
    return closed({
        "name": STR, "event_id": STR, "event_time": {"type": "integer"},
        "source": {"enum": [s.value for s in Source]},
        "user": closed({**{k: array(STR) for k in ("email", "phone", "external_id")},
                        **{k: STR for k in scalars}},
                       description="Match keys as sent: hashed, or normalised (city, state, "
                                   "country); absent keys are left out."),
        "page": closed({"url": OPT_STR, "referrer": OPT_STR}, ["url", "referrer"]),
        "properties": {"type": "object", "additionalProperties": True,
                       "description": "As validated; custom keys included."},
        "consent": closed({"marketing": consent, "ad_user_data": consent,
                           "ad_personalization": consent, "region": OPT_STR},
                          ["marketing", "ad_user_data", "ad_personalization", "region"]),
        "session_id": OPT_STR, "order_source": OPT_STR, "received_at": NUM,
        "warnings": array({"type": "array", "prefixItems": [STR, STR, STR], "minItems": 3,
                           "maxItems": 3}, "[field, reason, kind] of each warning."),
        "channel": {"enum": [c.value for c in Channel]},
        "enriched_from": {"type": ["string", "null"],
                          "description": "How the session context was found, if it was."},
        "copies": array(STR, "Channels of later copies merged into this one."),
        "app": closed({"app_id": STR, "app_name": OPT_STR, "app_version": OPT_STR},
                      ["app_id", "app_name", "app_version"]),
        "ad": closed({k: OPT_STR for k in ("callback", "campaign_id", "ad_id", "creative_id",
                                           "attribution_type", "attribution_provider")}
                     | {"is_retargeting": {"type": ["boolean", "null"]},
                        "attributed": {"type": ["boolean", "null"]}}),
        "lead": closed({"lead_id": STR, "lead_event_source": OPT_STR},
                       ["lead_id", "lead_event_source"]),
        "device": {"type": "object", "additionalProperties": True,
                   "description": "Client hints, as given."},
        "limited_data_use": {"type": "boolean"}, "test_event_code": STR,
        "action_source": {"enum": sorted(ACTION_SOURCES)},
        "hashed_users": {
            "type": "object", "description": "The user object of each destination type that "
            "hashes its own way (by type), as it was sent: its keys' SHA-256 digests.",
            "additionalProperties": {"type": "object", "additionalProperties": array(STR)}}},
        ["name", "event_id", "event_time", "source", "user", "page", "properties", "consent",
         "session_id", "order_source", "received_at", "warnings", "channel", "enriched_from",
         "copies"],
        description="The server's copy (the truth): validated, hashed, merged with later "
                    "copies.")


def _diagnostics_schemas() -> dict[str, Schema]:
    """GET /v1/diagnostics: diagnostics/report.py `build`, README "Diagnostics"."""
    keys = list(report.KEYS)
    counts = closed(dict.fromkeys(keys, INT), keys)
    shares = closed({k: {"type": "number", "minimum": 0, "maximum": 1} for k in keys}, keys)
    share = {"type": ["number", "null"], "minimum": 0, "maximum": 1,
             "description": "null when there is nothing to divide by."}
    per_destination = ("delivered", "rejected", "gave_up", "suppressed", "filtered", "pending")
    totals = ("received", "accepted", "duplicates", "merged", "rejected", "delivered",
              "suppressed", "filtered", "pending", "gave_up")
    return {
        "MatchKeyCounts": counts,
        "MatchKeyShares": shares,
        "Diagnostics": closed({
            "window": {"enum": list(report.WINDOWS)}, "since": NUM, "generated_at": NUM,
            "destinations": array(closed({
                "name": STR, "state": {"enum": ["active", "paused"]},
                "paused_reason": OPT_STR, "paused_at": OPT_NUM, "test_events": {
                    "type": "boolean"},
                "source_ids": closed({s.value: STR for s in Source},
                                     description="The platform's id each event source goes "
                                                 "to, as its destination type declares them "
                                                 "(a pixel, an event set, an app); unset ones "
                                                 "are left out."),
                "queue_depth": INT, "in_flight": INT, "oldest_pending_age_s": OPT_NUM},
                ["name", "state", "paused_reason", "paused_at", "test_events",
                 "source_ids", "queue_depth", "in_flight", "oldest_pending_age_s"])),
            "totals": closed(dict.fromkeys(totals, INT), totals),
            "events": array(closed({
                "event": STR, "received": INT, "accepted": INT, "duplicates": INT,
                "merged": INT, "rejected_ingest": INT, "rejected": INT,
                "destinations": array(closed({
                    "destination": STR, "dest_event": STR,
                    **dict.fromkeys(per_destination, INT),
                    "looks_like": {**OPT_STR, "description": "The standard name a custom "
                                                             "name resembles."}},
                    ["destination", "dest_event", *per_destination, "looks_like"]))},
                ["event", "received", "accepted", "duplicates", "merged", "rejected_ingest",
                 "rejected", "destinations"]), "Per incoming event name."),
            "rejections": array(closed({
                "event": STR, "stage": {"type": "string",
                                        "description": "ingest, or the destination's name."},
                "field": OPT_STR, "code": OPT_INT, "reason": OPT_STR, "count": INT},
                ["event", "stage", "field", "code", "reason", "count"])),
            "match_keys": closed({
                "events": INT, "counts": ref("MatchKeyCounts"),
                "coverage": ref("MatchKeyShares"), "score": {
                    "type": "number", "minimum": 0, "maximum": 10},
                "weights": ref("MatchKeyShares"),
                "by_event": array(closed({
                    "event": STR, "events": INT, "counts": ref("MatchKeyCounts"),
                    "coverage": ref("MatchKeyShares"), "score": NUM},
                    ["event", "events", "counts", "coverage", "score"])),
                "by_destination": array(closed({
                    "destination": STR, "score": NUM,
                    "weights": closed(
                        {k: NUM for k in sorted({k for p in REGISTRY.values()
                                                 for k in p.match_weights})},
                        description="Its type's weight of each match key.")},
                    ["destination", "weights", "score"])),
                "purchases": INT,
                "purchases_with_click_id": closed(
                    {k: INT for k in _attribution_click_ids()},
                    description="Purchases carrying each configured type's ad click id, by "
                                "its user key."),
                # Deprecated aliases for one release: purchases_with_<click id>.
                **{f"purchases_with_{k}": INT for k in _attribution_click_ids()}},
                ["events", "counts", "coverage", "score", "weights", "by_event", "purchases",
                 "purchases_with_click_id"]),
            "dedup_readiness": closed({"server_events": INT, "also_from_browser": INT,
                                       "share": share},
                                      ["server_events", "also_from_browser", "share"]),
            "enrichment": closed({"server_events": INT, "enriched": INT, "rate": share},
                                 ["server_events", "enriched", "rate"]),
            "latency_s": closed({"delivered": INT, "p50": OPT_NUM, "p95": OPT_NUM},
                                ["delivered", "p50", "p95"]),
            "trend": closed({"bucket_s": NUM, "received": array(INT), "delivered": array(INT)},
                            ["bucket_s", "received", "delivered"]),
            "alerts": array(closed({"key": STR, "title": STR, "detail": STR, "check": STR},
                                   ["key", "title", "detail", "check"])),
            "ingest_notices": closed({
                "dropped_fields": array(closed({"field": STR, "count": INT},
                                               ["field", "count"])),
                "unknown_fields": INT, "dropped_values": INT, "unverified_phones": INT},
                ["dropped_fields", "unknown_fields", "dropped_values", "unverified_phones"]),
            "collect_refused": array(closed({"reason": STR, "origin": OPT_STR, "count": INT},
                                            ["reason", "origin", "count"]))},
            ["window", "since", "generated_at", "destinations", "totals", "events",
             "rejections", "match_keys", "dedup_readiness", "enrichment", "latency_s", "trend",
             "alerts", "ingest_notices", "collect_refused"],
            description="Counts for events received in the window; see README "
                        "\"Diagnostics\"."),
    }


# -- operations ----------------------------------------------------------------------------

ADMIN: list[Schema] = [{"adminBearer": []}, {"adminHeader": []}, {"adminSession": []}]


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    out: Schema = {"description": description, "content": {JSON_TYPE: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _problem(description: str, *errors: str) -> Schema:
    """A `{error, reason}` answer whose error is one of `errors`."""
    return _json({"allOf": [ref("Problem"), {"properties": {"error": {"enum": list(errors)}}}]},
                 description)


def _html(description: str) -> Schema:
    return {"description": description, "content": {HTML_TYPE: {"schema": STR}}}


GUESSING = (f"too many failed credentials of this kind from this address (a burst of "
            f"{credential_guard.BURST}, then one every {credential_guard.REFILL_S:g} s); a "
            "client presenting a valid credential is never limited")
RETRY_AFTER: Schema = {"headers": {"Retry-After": {
    "description": "Seconds to wait.", "required": True,
    "schema": {"type": "integer", "minimum": 1}}}}


def _shared_responses() -> dict[str, Schema]:
    return {
        "Unauthorized": _problem("The key or token is missing or wrong.", "unauthorized"),
        "AdminForbidden": _problem("server.admin_token is not set.", "forbidden"),
        "OriginForbidden": _problem("The Origin is not in the browser source's "
                                    "allowed_origins.", "forbidden"),
        "TooLarge": _problem("The body is larger than the endpoint takes.", "too_large"),
        "RateLimited": _problem("Over the source's rate_limit (events per second), or "
                                f"{GUESSING}.", "rate_limited") | RETRY_AFTER,
        "CredentialLimited": _problem(GUESSING[0].upper() + GUESSING[1:] + ".",
                                      "rate_limited") | RETRY_AFTER,
        "BodyTimeout": _problem("The body did not arrive within server.body_timeout_s.",
                                "request_timeout"),
        "Unavailable": _problem("The store could not commit; nothing was kept; retry.",
                                "unavailable") | RETRY_AFTER,
        "SessionUnavailable": _problem("The store could not be read (the data, or the "
                                       "session a cookie names); retry.",
                                       "unavailable") | RETRY_AFTER,
    }


def shared(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _param(name: str, where: str, description: str, schema: Schema | None = None,
           required: bool = False) -> Schema:
    return {"name": name, "in": where, "description": description,
            "required": required or where == "path", "schema": schema or STR}


def _body(schema: Schema, description: str = "") -> Schema:
    out: Schema = {"required": True, "content": {JSON_TYPE: {"schema": schema}}}
    if description:
        out["description"] = description
    return out


def _paths() -> dict[str, Schema]:
    mib = f"{MAX_BODY_BYTES // (1024 * 1024)} MiB"
    collect_kib = f"{browser.MAX_COLLECT_BYTES // 1024} KiB"
    window = {"type": "string", "enum": list(report.WINDOWS), "default": "24h"}
    return {
        "/v1/events": {"post": {
            "tags": ["events"], "operationId": "postEvents",
            "summary": "Send one event or a batch",
            "description": f"One event object or `{{\"events\": [...]}}` (at most "
                           f"{api.MAX_EVENTS} events, {mib}). A 202 means committed to disk. "
                           "A browser source's site key works from an allowed Origin.",
            "security": [{"sourceKey": []}, {"siteKey": []}],
            "requestBody": _body(ref("EventsRequest")),
            "responses": {
                "202": _json(ref("IngestResult"), "Committed; per-event results in input "
                                                  "order."),
                "400": _problem("Not JSON, or not an event or {events: [...]} (the reason "
                                "says which).", "malformed_json", "malformed_envelope"),
                "401": shared("Unauthorized"), "403": shared("OriginForbidden"),
                "408": shared("BodyTimeout"), "413": shared("TooLarge"),
                "429": shared("RateLimited"), "503": shared("Unavailable")}}},
        "/open_api/v1.3/event/track/": {"post": {
            "tags": ["events"], "operationId": "tiktokTrack",
            "summary": "Drop-in for TikTok's Events API v1.3 (event/track)",
            "description": "TikTok's body and header; the Access-Token is a server source "
                           "key. Answers always with HTTP 200 in TikTok's shape; one bad "
                           "event refuses the request (40002) and nothing is queued.",
            "security": [{"accessToken": []}],
            "requestBody": _body(ref("TikTokTrackRequest")),
            "responses": {
                "200": _json(ref("TikTokAnswer"), "TikTok's answer; see `code`."),
                "408": shared("BodyTimeout"),
                "429": _json(ref("TikTokAnswer"), f"Code 40100: {GUESSING}.",
                             RETRY_AFTER["headers"])}}},
        graph_api.EVENTS_PATH: {"post": {
            "tags": ["events"], "operationId": "metaEvents",
            "summary": "Drop-in for Meta's Conversions API (Graph API /events)",
            "description": "Meta's body as JSON, urlencoded or multipart form; the token (a "
                           "server source key) as access_token in the query or body, or as "
                           "Bearer. The events go to every destination (Meta destinations of "
                           "other pixels excepted); one bad event refuses the request.",
            "security": [{"graphToken": []}, {"sourceKey": []}],
            "parameters": [
                _param("version", "path", "A Graph API version such as v25.0; anything "
                       "else is not this route.",
                       {"type": "string", "pattern": r"^v[0-9]{1,3}\.[0-9]{1,3}$"}),
                _param("pixel_id", "path", "A Meta destination's pixel_id (any id when none "
                                           "is configured)."),
                _param("access_token", "query", "A server source key.")],
            "requestBody": {"required": True, "content": {
                JSON_TYPE: {"schema": ref("MetaEventsRequest")},
                "application/x-www-form-urlencoded": {"schema": ref("MetaEventsForm")},
                "multipart/form-data": {"schema": ref("MetaEventsForm")}}},
            "responses": {
                "200": _json(ref("MetaAnswer"), "Committed."),
                "400": _json(ref("GraphError"), "Refused whole: the token (104, 190) or a "
                                                "parameter (100)."),
                "408": shared("BodyTimeout"),
                "413": _json(ref("GraphError"), f"Code 100: the body is larger than {mib}."),
                "429": _json(ref("GraphError"), f"Code 4 (is_transient): {GUESSING}, or over "
                                                "the source's rate_limit.",
                             RETRY_AFTER["headers"]),
                "500": _json(ref("GraphError"), "Code 2 (is_transient): the store could not "
                                                "commit; nothing was kept; retry.",
                             RETRY_AFTER["headers"])}}},
        "/v1/collect": {
            "post": {
                "tags": ["browser"], "operationId": "collect",
                "summary": "A hit of the browser tag",
                "description": f"The tag posts text/plain (a CORS simple request, so it "
                               f"survives page unload) with the site key in `k`; at most "
                               f"{collect_kib}. Sets the {SESSION_COOKIE} cookie and the "
                               "landing click ids' ("
                               + ", ".join(click_cookie(k.url_param) for k in _declared_ids()
                                           if k.url_param) + "; HttpOnly, SameSite=Lax).",
                "security": [{"siteKey": []}, {}],
                "requestBody": {"required": True, "content": {
                    "text/plain": {"schema": {"type": "string",
                                              "contentMediaType": JSON_TYPE,
                                              "contentSchema": ref("CollectHit")}},
                    JSON_TYPE: {"schema": ref("CollectHit")}}},
                "responses": {
                    "202": _json(ref("CollectAnswer"), "Recorded.", headers={
                        "Set-Cookie": {"description": "The session and click id cookies.",
                                       "schema": STR}}),
                    "400": _problem("Not JSON, not an object, or a malformed `link`.",
                                    "malformed_json", "malformed_envelope", "malformed_link"),
                    "401": shared("Unauthorized"), "403": shared("OriginForbidden"),
                    "408": shared("BodyTimeout"), "413": shared("TooLarge"),
                    "429": shared("RateLimited"), "503": shared("Unavailable")}},
            "options": {
                "tags": ["browser"], "operationId": "collectPreflight",
                "summary": "CORS preflight (for a key sent in X-Pixelrelay-Key)",
                "parameters": [_param("Origin", "header", "The page's origin.",
                                      required=True)],
                "responses": {
                    "204": {"description": "Allowed; Access-Control-Allow-* headers."},
                    "400": _problem("No Origin.", "bad_preflight"),
                    "403": shared("OriginForbidden")}}},
        "/tag.js": {"get": {
            "tags": ["browser"], "operationId": "tag",
            "summary": "The browser tag, with the event mapping embedded",
            "parameters": [
                _param("k", "query", "A browser source's site key: that source's "
                                     "consent_required and page_views defaults."),
                _param("If-None-Match", "header", "The ETag held.")],
            "responses": {
                "200": {"description": "The script (Cache-Control: public, max-age=3600).",
                        "headers": {"ETag": {"required": True, "schema": STR}},
                        "content": {"application/javascript": {"schema": STR}}},
                "304": {"description": "Not modified."}}}},
        "/v1/webhooks/shopify/{source}": {"post": {
            "tags": ["shopify"], "operationId": "shopifyWebhook",
            "summary": "A Shopify webhook (orders/create or orders/paid, checkouts/create)",
            "description": "Checked with the source's secret over the raw body. The order's "
                           "purchase_topic becomes a Purchase with event_id "
                           "`ord_<order id>_<snake TikTok name>` (so redeliveries are "
                           "duplicates), checkouts/create an InitiateCheckout; other topics "
                           "are answered 200 and ignored.",
            "security": [{"shopifyHmac": []}],
            "parameters": [
                _param("source", "path", "The name of a kind = \"shopify\" source."),
                _param("X-Shopify-Topic", "header", "The webhook's topic.", required=True),
                _param("X-Shopify-Webhook-Id", "header", "Logged with a refusal.")],
            "requestBody": _body({"type": "object", "additionalProperties": True,
                                  "description": "Shopify's order (or checkout) object; an "
                                                 "order needs its `id`, a checkout its id or "
                                                 "`token`."},
                                 f"At most {mib}."),
            "responses": {
                "200": _json(ref("ShopifyAnswer"), "Committed, a duplicate, or ignored."),
                "400": _problem("Not JSON, or no usable id.", "malformed_json", "unmappable"),
                "401": _problem("X-Shopify-Hmac-Sha256 is missing or does not match.",
                                "unauthorized"),
                "404": _problem("No Shopify source of that name.", "not_found"),
                "408": shared("BodyTimeout"), "413": shared("TooLarge"),
                "422": _json(ref("ShopifyRejected"), "The mapped event was refused (Shopify "
                                                     "will redeliver)."),
                "429": shared("CredentialLimited"),
                "500": _problem("A topic admitted without a mapping (a defect).", "internal"),
                "503": shared("Unavailable")}}},
        "/v1/deliveries": {"get": {
            "tags": ["admin"], "operationId": "deliveries",
            "summary": "The delivery log of an event, or of an order's purchase",
            "security": ADMIN,
            "parameters": [
                _param("event_id", "query", "The event's id."),
                _param("order_id", "query", "An order id: its purchase's derived ids.")],
            "responses": {
                "200": _json(ref("DeliveryLog"), "Per destination: state, attempts and "
                                                 "TikTok's last answer."),
                "400": _problem("Neither event_id nor order_id.", "bad_request"),
                "401": shared("Unauthorized"), "403": shared("AdminForbidden"),
                "429": shared("CredentialLimited"),
                "503": _problem("The store could not be read.", "unavailable")
                | RETRY_AFTER}}},
        "/v1/destinations/{name}/resume": {"post": {
            "tags": ["admin"], "operationId": "resume",
            "summary": "Resume a destination paused by a token or permission error",
            "security": ADMIN,
            "parameters": [_param("name", "path", "The destination's name.")],
            "responses": {
                "200": _json(ref("Resumed"), "Recorded in the store: every delivery process "
                                              "resumes it."),
                "401": shared("Unauthorized"), "403": shared("AdminForbidden"),
                "404": _problem("No destination of that name.", "not_found"),
                "429": shared("CredentialLimited"),
                "503": _problem("The store could not record the resume; the pause is "
                                "unchanged, retry.", "unavailable") | RETRY_AFTER}}},
        "/v1/diagnostics": {"get": {
            "tags": ["diagnostics"], "operationId": "diagnostics",
            "summary": "The dashboard's data as JSON", "security": ADMIN,
            "parameters": [_param("window", "query", "The time window.", window)],
            "responses": {
                "200": _json(ref("Diagnostics"), "The report."),
                "400": _problem("An unknown window.", "bad_request"),
                "401": shared("Unauthorized"), "403": shared("AdminForbidden"),
                "429": shared("CredentialLimited"), "503": shared("SessionUnavailable")}}},
        "/v1/events/{event_id}/trace": {"get": {
            "tags": ["diagnostics"], "operationId": "trace",
            "summary": "One event's journey: the stored copy, each destination's payload "
                       "and every request",
            "description": "HTML with Accept: text/html (the page's trace view).",
            "security": ADMIN,
            "parameters": [_param("event_id", "path", "The event_id (may contain /).")],
            "responses": {
                "200": {"description": "The trace.", "content": {
                    JSON_TYPE: {"schema": ref("Trace")}, HTML_TYPE: {"schema": STR}}},
                "401": {"description": "Not signed in (HTML: the sign-in page).", "content": {
                    **shared_content("Unauthorized"), HTML_TYPE: {"schema": STR}}},
                "403": shared("AdminForbidden"),
                "404": {"description": "No delivery of this event_id is known.", "content": {
                    **_problem("", "not_found")["content"], HTML_TYPE: {"schema": STR}}},
                "429": shared("CredentialLimited"),
                "503": {"description": "The store could not be read; retry (HTML: a page "
                                       "saying so).", "content": {
                    **shared_content("SessionUnavailable"), HTML_TYPE: {"schema": STR}}}
                | RETRY_AFTER}}},
        "/metrics": {"get": {
            "tags": ["operations"], "operationId": "metrics",
            "summary": "Prometheus exposition (pixelrelay_*); no auth, no event data",
            "responses": {"200": {"description": "Text format 0.0.4. When the store cannot "
                                                 "be read, this process's own metrics "
                                                 "without the queue gauges, and a comment "
                                                 "line saying so.",
                                  "content": {"text/plain": {"schema": STR}}}}}},
        "/healthz": {"get": {
            "tags": ["operations"], "operationId": "health", "summary": "Liveness",
            "responses": {"200": _json(ref("Health"), "Serving.")}}},
        "/openapi.json": {"get": {
            "tags": ["operations"], "operationId": "openapi", "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")}}},
        "/": {"get": {
            "tags": ["diagnostics"], "operationId": "page", "summary": "The dashboard",
            "security": ADMIN,
            "parameters": [
                _param("window", "query", "The time window.", window),
                _param("q", "query", "Search: an event_id prefix, an order id or an event "
                                     "name."),
                _param("state", "query", "Only events with a delivery in this state.",
                       {"type": "string", "enum": [s.value for s in DeliveryState]}),
                _param("destination", "query", "Only events with a delivery to this "
                                               "destination (with state: the same one)."),
                _param("channel", "query", "Only events that came in by this channel.",
                       {"type": "string", "enum": [c.value for c in Channel]})],
            "responses": {"200": _html("The page."),
                          "400": _html("A search value that is not one of its choices, "
                                       "named."),
                          "401": _html("The sign-in form."),
                          "429": shared("CredentialLimited"),
                          "503": _html("The store could not be read: a page saying so; "
                                       "retry.") | RETRY_AFTER}}},
        "/login": {
            "get": {"tags": ["diagnostics"], "operationId": "loginForm",
                    "summary": "The sign-in form",
                    "responses": {"200": _html("The form.")}},
            "post": {
                "tags": ["diagnostics"], "operationId": "login",
                "summary": "Sign in with the admin token (a 12 h session cookie)",
                "requestBody": {"required": True, "content": {
                    "application/x-www-form-urlencoded": {"schema": {
                        "type": "object", "required": ["token"],
                        "properties": {"token": STR}}}}},
                "responses": {
                    "303": {"description": "Signed in: to /, with the session cookie.",
                            "headers": {"Set-Cookie": {"required": True, "schema": STR},
                                        "Location": {"required": True, "schema": STR}}},
                    "401": _html("Not the admin token: the form again."),
                    "408": shared("BodyTimeout"),
                    "413": _html(f"The form is larger than "
                                 f"{diagnostics_endpoints.MAX_LOGIN_BYTES} bytes."),
                    "429": shared("CredentialLimited"),
                    "503": _html("The store could not open the session; try again.")
                    | RETRY_AFTER}}},
        "/destinations/{name}/resume": {"post": {
            "tags": ["diagnostics"], "operationId": "resumeFromPage",
            "summary": "The page's Resume button (session cookie and its CSRF token)",
            "description": "For scripts, POST /v1/destinations/{name}/resume with the admin "
                           "token. This form needs a signed-in session, the `csrf` value the "
                           "page put in the form, and (when the browser sends one) an Origin "
                           "of this site.",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": STR}],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["csrf"], "properties": {"csrf": STR}}}}},
            "responses": {
                "303": {"description": "Resumed for every process: back to /.",
                        "headers": {"Location": {"required": True, "schema": STR}}},
                "403": _html("No open session, a CSRF token that is not this session's, or "
                             "another site's form."),
                "404": _html("No destination of that name."),
                "408": shared("BodyTimeout"),
                "413": _html(f"The form is larger than "
                             f"{diagnostics_endpoints.MAX_LOGIN_BYTES} bytes."),
                "503": _html("The store could not record the resume (or read the session); "
                             "the pause is unchanged.") | RETRY_AFTER}}},
        "/logout": {"post": {
            "tags": ["diagnostics"], "operationId": "logout", "summary": "Sign out",
            "responses": {"303": {"description": "To /, the session ended in the store (for "
                                                 "every process) and its cookie deleted.",
                                  "headers": {"Location": {"required": True,
                                                           "schema": STR}}},
                          "503": _problem("The store could not end the session.",
                                          "unavailable") | RETRY_AFTER}}},
    }


def shared_content(name: str) -> Schema:
    """The content map of a shared response, for one that adds another media type."""
    content: Schema = _shared_responses()[name]["content"]
    return content


def _security_schemes() -> dict[str, Schema]:
    return {
        "sourceKey": {"type": "http", "scheme": "bearer",
                      "description": "Authorization: Bearer <key of a kind = \"server\" "
                                     "source>."},
        "siteKey": {"type": "apiKey", "in": "header", "name": "X-Pixelrelay-Key",
                    "description": "A browser source's (public) key, from one of its "
                                   "allowed_origins. /v1/collect also takes it as `k` in "
                                   "the body."},
        "graphToken": {"type": "apiKey", "in": "query", "name": "access_token",
                       "description": "Meta's placement (also a body field, or Bearer); the "
                                      "value is a server source key."},
        "accessToken": {"type": "apiKey", "in": "header", "name": "Access-Token",
                        "description": "TikTok's header; the value is a server source key."},
        "adminBearer": {"type": "http", "scheme": "bearer",
                        "description": "Authorization: Bearer <server.admin_token>."},
        "adminHeader": {"type": "apiKey", "in": "header", "name": "X-Admin-Token",
                        "description": "server.admin_token."},
        "adminSession": {"type": "apiKey", "in": "cookie", "name": diagnostics_endpoints.COOKIE,
                         "description": "The session POST /login opens (HttpOnly, "
                                        "SameSite=Strict, 12 h; kept in the database, so "
                                        "/logout or a new admin token ends it)."},
        "shopifyHmac": {"type": "apiKey", "in": "header", "name": "X-Shopify-Hmac-Sha256",
                        "description": "base64 HMAC-SHA256 of the raw body with the "
                                       "source's secret."},
    }


def document() -> dict[str, Any]:
    """The whole document, a fresh copy (parts of the built one share objects)."""
    result: dict[str, Any] = orjson.loads(_encoded())
    return result


@functools.cache
def _encoded() -> bytes:
    """Built once per process: it depends on the code, not on the configuration."""
    return orjson.dumps({
        "openapi": "3.1.0",
        "info": {"title": "pixelrelay", "version": __version__,
                 "summary": "Self-hosted server-side conversion gateway for TikTok's "
                            "Events API v1.3 and Meta's Conversions API",
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": [{"name": n} for n in ("events", "browser", "shopify", "admin", "diagnostics",
                                       "operations")],
        "paths": _paths(),
        "components": {
            "schemas": _request_schemas() | _answer_schemas() | _diagnostics_schemas(),
            "responses": _shared_responses(),
            "securitySchemes": _security_schemes(),
        },
    })


async def openapi_json(request: Request) -> Response:
    return Response(_encoded(), media_type=JSON_TYPE)
