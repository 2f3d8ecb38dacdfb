"""Meta Conversions API server events -> pixelrelay's event objects (the /v1/events shape),
and pixelrelay's field names back to Meta's for the answers. Pure: no I/O.

Meta refuses a whole request for one bad event, and so does the drop-in; but a key pixelrelay
has no field for is dropped with a message (never the event), so no sender loses a
conversion to an extra field. What the event object cannot carry (gender, date of birth,
Meta's business-messaging ids) is said in the messages, by key, never by value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from pixelrelay.pipeline import nesting
from pixelrelay.pipeline.normalize import is_sha256_hex
from pixelrelay.pipeline.pii import safe_key
from pixelrelay.pipeline.readers import is_blank, json_type

MAX_EVENTS = 1000  # Meta's limit per request
# Request parameters Meta documents: read (data, test_event_code, the token) or accepted and
# ignored (partner_agent names the integrator; appsecret_proof proves a Meta app secret
# pixelrelay does not hold; the upload_* keys are legacy offline-upload bookkeeping).
TOP_KEYS = frozenset({"data", "test_event_code", "access_token", "partner_agent",
                      "appsecret_proof", "namespace_id", "upload_id", "upload_tag",
                      "upload_source"})
SUBCODE_TOO_OLD = 2804003  # "Event Timestamp Too Old" (meta-capi.md §5)
SUBCODE_FIELD = 2804019  # a per-field validation failure without a documented name of its own

# action_source -> pixelrelay's source. Every way a person reaches the advertiser online
# is a web event; the Meta destination chooses its own action_source again when it sends.
SOURCES = {"website": "web", "email": "web", "chat": "web", "phone_call": "web",
           "system_generated": "web", "business_messaging": "web", "other": "web",
           "physical_store": "offline", "app": "app"}
_LIST_KEYS = {"em": "email", "ph": "phone", "external_id": "external_id"}
# Meta takes lists for these too; the event object holds one value (the first).
_ONE_KEYS = {"fn": "first_name", "ln": "last_name", "ct": "city", "st": "state",
             "zp": "zip_code", "country": "country"}
_PLACES = frozenset({"ct", "st", "country"})  # the event object keeps them unhashed
_AS_IS_KEYS = {"client_ip_address": "ip", "client_user_agent": "user_agent", "fbc": "fbc",
               "fbp": "fbp"}
# Meta's user_data keys the event object has no field for: dropped, named in the messages.
_NO_FIELD_USER = frozenset({
    "ge", "db", "f5first", "f5last", "fi", "dobd", "dobm", "doby", "subscription_id",
    "fb_login_id", "lead_id", "anon_id", "madid", "page_id", "page_scoped_user_id",
    "ctwa_clid", "ig_account_id", "ig_sid", "partner_id", "partner_name"})
_ITEM_KEYS = {"id": "content_id", "quantity": "quantity", "item_price": "price",
              "title": "content_name", "category": "content_category", "brand": "brand"}
_EVENT_READ = frozenset({
    "event_name", "event_time", "event_id", "action_source", "event_source_url",
    "referrer_url", "user_data", "custom_data", "data_processing_options", "opt_out",
    "app_data"})
# Qualify data_processing_options; the Meta destination sends its own (0/0: Meta geolocates).
_EVENT_IGNORED = frozenset({"data_processing_options_country",
                            "data_processing_options_state"})
_NO_FIELD_EVENT = frozenset({"original_event_data", "attribution_data", "messaging_channel"})
NO_FIELD = "pixelrelay's event has no field for it; dropped (sent to no destination)"
UNKNOWN = "unknown field; dropped"
HASHED_PLACE = ("hashed: sent as given where it is taken hashed (Meta), left out where it is "
                "taken unhashed (TikTok)")
OPT_OUT = ("taken as consent ad_personalization denied: the event counts for attribution, "
           "not for ads optimisation")

# pixelrelay's field names -> Meta's, for refusals and notices the shared parser words in
# pixelrelay's terms. Longest prefix first wins (see meta_path).
_TO_META = {
    "event": "event_name", "timestamp": "event_time", "source": "action_source",
    "page.url": "event_source_url", "page.referrer": "referrer_url", "page": "event_source_url",
    "user": "user_data", "properties": "custom_data",
    "limited_data_use": "data_processing_options", "consent": "opt_out",
    "consent.ad_personalization": "opt_out",
    "app.app_id": "app_data.extinfo.1", "app.app_version": "app_data.extinfo.2",
    "app": "app_data",
    **{f"user.{ours}": f"user_data.{theirs}"
       for theirs, ours in (_LIST_KEYS | _ONE_KEYS | _AS_IS_KEYS).items()},
}
_FROM_ITEM = {ours: theirs for theirs, ours in _ITEM_KEYS.items()}
_NOT_DIGIT = re.compile(r"[^0-9]")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why Meta (and so the drop-in) refuses the whole request; `field` in Meta's terms."""

    field: str
    reason: str
    subcode: int = SUBCODE_FIELD

    def text(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


@dataclass(slots=True)
class Converted:
    events: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    # Meta paths of digests given for keys the event object keeps unhashed (city, state,
    # country): said here once, so the parser's "not usable" for them is left out.
    hashed_places: set[str] = field(default_factory=set)

    def messages(self, ingest_warnings: list[str]) -> list[str]:
        theirs = (meta_warning(w) for w in ingest_warnings)
        return self.warnings + [w for w in theirs
                                if w.partition(": ")[0] not in self.hashed_places]


def meta_path(ours: str) -> str:
    """`user.email.0` -> `user_data.em[0]`; `properties.contents.1.price` ->
    `custom_data.contents[1].item_price`."""
    parts = ours.split(".") if ours else []
    for n in range(len(parts), 0, -1):
        theirs = _TO_META.get(".".join(parts[:n]))
        if theirs is not None:
            parts = theirs.split(".") + parts[n:]
            break
    if parts[:2] == ["custom_data", "contents"] and len(parts) >= 4:
        parts[3] = _FROM_ITEM.get(parts[3], parts[3])
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def meta_warning(warning: str) -> str:
    """An ingest warning ("events[3] user.email: ...") in Meta's terms ("data[3].user_data.em:
    ..."); anything else unchanged."""
    if not warning.startswith("events["):
        return warning
    index, _, rest = warning[len("events["):].partition("] ")
    where, sep, why = rest.partition(": ")
    return f"data[{index}].{meta_path(where)}{sep}{why}"


def convert(params: Mapping[str, Any]) -> Converted | Refusal:
    """A request's parameters (query and body merged) -> event objects, or the refusal."""
    out = Converted([])
    out.warnings += [f"{_key(k)}: unknown parameter; dropped" for k in params
                     if k not in TOP_KEYS]
    test_code = params.get("test_event_code")
    if test_code is not None and not isinstance(test_code, str):
        return Refusal("test_event_code", "must be a string")
    if "data" not in params:
        return Refusal("data", "is required")
    data = params["data"]
    if isinstance(data, str):  # a form sends it JSON-encoded
        data = _decoded(data, "data")
        if isinstance(data, Refusal):
            return data
    if not isinstance(data, list):
        return Refusal("data", f"must be an array of events, got {json_type(data)}")
    if not data:
        return Refusal("data", "must contain at least 1 event")
    if len(data) > MAX_EVENTS:
        return Refusal("data", f"must contain at most {MAX_EVENTS} events, got {len(data)}")
    for i, item in enumerate(data):
        event = _event(item, f"data[{i}]", test_code.strip() if test_code else None, out)
        if isinstance(event, Refusal):
            return event
        out.events.append(event)
    return out


def _decoded(text: str, where: str) -> Any:
    try:
        return nesting.loads(text)
    except orjson.JSONDecodeError:
        return Refusal(where, "is not valid JSON")
    except nesting.TooDeep as exc:
        return Refusal(where + nesting.dotted(exc.path, "[{}]"), nesting.REASON)


def _key(k: object) -> str:
    return safe_key(k)[:100]


def _event(item: Any, at: str, test_code: str | None,
           out: Converted) -> dict[str, Any] | Refusal:
    warnings = out.warnings
    if isinstance(item, str):  # Meta's SDK JSON-encodes each event inside the array too
        item = _decoded(item, at)
        if isinstance(item, Refusal):
            return item
    if not isinstance(item, dict):
        return Refusal(at, f"must be an event object, got {json_type(item)}")
    for key in ("event_name", "event_time", "action_source", "user_data"):
        if item.get(key) is None or (key != "user_data" and is_blank(item[key])):
            return Refusal(f"{at}.{key}", "is required")
    source = SOURCES.get(item["action_source"]) if isinstance(item["action_source"],
                                                              str) else None
    if source is None:
        return Refusal(f"{at}.action_source", "must be one of " + ", ".join(SOURCES))
    event: dict[str, Any] = {"event": item["event_name"], "timestamp": item["event_time"],
                             "source": source, "action_source": item["action_source"]}
    if not is_blank(item.get("event_id")):
        event["event_id"] = item["event_id"]
    for key in item:
        if key in _NO_FIELD_EVENT:
            warnings.append(f"{at}.{key}: {NO_FIELD}")
        elif key not in _EVENT_READ and key not in _EVENT_IGNORED:
            warnings.append(f"{at}.{_key(key)}: {UNKNOWN}")
    page = {k: item[src] for k, src in (("url", "event_source_url"),
                                        ("referrer", "referrer_url"))
            if not is_blank(item.get(src))}
    if page:
        event["page"] = page
    user = _user(item["user_data"], f"{at}.user_data", out)
    if isinstance(user, Refusal):
        return user
    event["user"] = user
    if not is_blank(cd := item.get("custom_data")):
        if not isinstance(cd, dict):
            return Refusal(f"{at}.custom_data", f"must be an object, got {json_type(cd)}")
        event["properties"] = _custom_data(cd, f"{at}.custom_data", warnings)
    refused = _flags(item, at, warnings, event)
    if refused is not None:
        return refused
    app = _app(item.get("app_data"), source, at, warnings)
    if isinstance(app, Refusal):
        return app
    if app is not None:
        event["app"] = app
    if test_code:
        event["test_event_code"] = test_code
    return event


def _flags(item: dict[str, Any], at: str, warnings: list[str],
           event: dict[str, Any]) -> Refusal | None:
    """data_processing_options and opt_out, into the event's privacy fields."""
    dpo = item.get("data_processing_options")
    if dpo is not None:
        if not isinstance(dpo, list) or not all(isinstance(x, str) for x in dpo):
            return Refusal(f"{at}.data_processing_options", "must be an array of strings")
        # ["LDU"]: Limited Data Use; []: explicitly none.
        event["limited_data_use"] = any(x.strip().upper() == "LDU" for x in dpo)
    opt_out = item.get("opt_out")
    if opt_out is not None:
        if not isinstance(opt_out, bool):
            return Refusal(f"{at}.opt_out", "must be a boolean")
        if opt_out:
            event["consent"] = {"ad_personalization": "denied"}
            warnings.append(f"{at}.opt_out: {OPT_OUT}")
    return None


def _user(ud: Any, at: str, out: Converted) -> dict[str, Any] | Refusal:
    warnings = out.warnings
    if not isinstance(ud, dict):
        return Refusal(at, f"must be an object, got {json_type(ud)}")
    user: dict[str, Any] = {}
    for key, value in ud.items():
        if is_blank(value):
            continue
        if key in _LIST_KEYS:
            user[_LIST_KEYS[key]] = ([_phone(v) for v in value] if isinstance(value, list)
                                     else _phone(value)) if key == "ph" else value
        elif key in _ONE_KEYS:
            one = user[_ONE_KEYS[key]] = _first(value, f"{at}.{key}", warnings)
            if key in _PLACES and isinstance(one, str) and is_sha256_hex(one.strip()):
                out.hashed_places.add(f"{at}.{key}")
                warnings.append(f"{at}.{key}: {HASHED_PLACE}")
        elif key in _AS_IS_KEYS:
            user[_AS_IS_KEYS[key]] = value
        else:
            why = NO_FIELD if key in _NO_FIELD_USER else UNKNOWN
            warnings.append(f"{at}.{_key(key)}: {why}")
    return user


def _phone(value: Any) -> Any:
    """Meta's plain phone is digits with the country code, no `+`: given the `+`, the parser
    reads it as E.164. A digest (Meta's format) and what is not a string pass as they are."""
    if not isinstance(value, str):
        return value
    s = value.strip()
    if s.startswith("+") or is_sha256_hex(s):
        return s
    digits = _NOT_DIGIT.sub("", s)
    digits = digits[2:] if digits.startswith("00") else digits
    return "+" + digits if digits else s


def _first(value: Any, at: str, warnings: list[str]) -> Any:
    if not isinstance(value, list):
        return value
    given = [v for v in value if not is_blank(v)]
    if len(given) > 1:
        warnings.append(f"{at}: {len(given)} values; the first is kept")
    return given[0] if given else None


def _custom_data(cd: dict[str, Any], at: str, warnings: list[str]) -> dict[str, Any]:
    """Meta's custom_data keys are pixelrelay's property names, except in contents items;
    other keys pass as custom properties, as Meta takes them."""
    props = dict(cd)
    contents = cd.get("contents")
    if isinstance(contents, list):
        props["contents"] = [_item(c, f"{at}.contents[{i}]", warnings)
                             for i, c in enumerate(contents)]
    return props


def _item(c: Any, at: str, warnings: list[str]) -> Any:
    if not isinstance(c, dict):
        return c  # the parser refuses it, naming custom_data.contents[i]
    for key in c:
        if key not in _ITEM_KEYS and not is_blank(c[key]):
            warnings.append(f"{at}.{_key(key)}: {NO_FIELD}")
    return {_ITEM_KEYS[k]: v for k, v in c.items() if k in _ITEM_KEYS}


def _app(app_data: Any, source: str, at: str,
         warnings: list[str]) -> dict[str, Any] | Refusal | None:
    """An app event's app: extinfo's package name (its 2nd item) is the app's id, its short
    version (the 3rd) the app version. Meta requires app_data of app events; so does this."""
    if source != "app":
        if not is_blank(app_data):
            warnings.append(f"{at}.app_data: read only for action_source app; dropped")
        return None
    extinfo = app_data.get("extinfo") if isinstance(app_data, dict) else None
    if not isinstance(extinfo, list) or len(extinfo) < 2 or not isinstance(
            extinfo[1], str) or not extinfo[1].strip():
        return Refusal(f"{at}.app_data.extinfo", "app events need app_data.extinfo with the "
                                                 "app's package name (its 2nd item)")
    app: dict[str, Any] = {"app_id": extinfo[1].strip()}
    if len(extinfo) > 2 and isinstance(extinfo[2], str) and extinfo[2].strip():
        app["app_version"] = extinfo[2].strip()
    return app
