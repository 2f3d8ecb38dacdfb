"""Pure judging of a Conversions API request's parameters against Meta's contract (meta-capi.md).

Problems name the field path and the rule, and never echo a value: raw personal data that
reaches the emulator must not spread into its logs or answers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pixelrelay.emulator.meta import graph as g
from pixelrelay.emulator.meta.wire import decode_data, decode_event

MAX_EVENTS: Final = 1000
WINDOW_S: Final = 7 * 86400
# RudderStack's limit for physical_store; Meta's own page was not read (meta-capi.md §4).
STORE_WINDOW_S: Final = 62 * 86400
# Meta's future tolerance is undocumented; a minute of clock skew, as RudderStack allows.
FUTURE_SKEW_S: Final = 60
MAX_EVENT_TIME: Final = 10_000_000_000  # at or above: milliseconds, not seconds

ACTION_SOURCES: Final = frozenset({
    "website", "app", "email", "phone_call", "chat", "physical_store", "system_generated",
    "business_messaging", "other",
})
CONTENT_TYPES: Final = frozenset({"product", "product_group"})
DELIVERY_CATEGORIES: Final = frozenset({"in_store", "curbside", "home_delivery"})
# Customer information Meta only takes as a SHA-256 digest of the normalised value.
HASHED_KEYS: Final = frozenset({
    "em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country",
    "f5first", "f5last", "fi", "dobd", "dobm", "doby",
})
PLAIN_STR_KEYS: Final = frozenset({
    "subscription_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid",
    "ig_account_id", "ig_sid", "partner_id", "partner_name",
})
ID_KEYS: Final = frozenset({"fb_login_id", "lead_id"})
TOP_STR_PARAMS: Final = (
    "test_event_code", "partner_agent", "namespace_id", "upload_id", "upload_tag",
    "upload_source",
)
DPO_KEYS: Final = ("data_processing_options", "data_processing_options_country",
                   "data_processing_options_state")
# Meta's Parameter Builder appendix (a 5th dot segment): 2 chars from this set, else 8.
SHORT_APPENDICES: Final = frozenset({"AQ", "Ag", "Aw", "BA", "BQ", "Bg"})
EMPTY_SHA256: Final = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

MISSING: Final = "Missing data for required field"
NOT_STRING: Final = "Not a valid string"
NOT_INTEGER: Final = "Not a valid integer"
NOT_NUMBER: Final = "Not a valid number"
NOT_BOOLEAN: Final = "Not a valid boolean"
NOT_OBJECT: Final = "Not a valid object"
NOT_LIST: Final = "Not a valid list"
NOT_HASHED: Final = (
    "Not a SHA-256 hex digest (64 lowercase hex characters); unhashed customer information "
    "is refused"
)
HASH_HINTS: Final = {
    "em": " (hash the trimmed, lowercased email)",
    "ph": " (hash the digits with the country code, without '+')",
}

_sha256_hex: Final = re.compile(r"[0-9a-f]{64}").fullmatch
_sha256_any_case: Final = re.compile(r"[0-9a-fA-F]{64}").fullmatch
_currency: Final = re.compile(r"[A-Za-z]{3}").fullmatch
_digits: Final = re.compile(r"[0-9]+").fullmatch
_base64url: Final = re.compile(r"[A-Za-z0-9_-]+").fullmatch


@dataclass(frozen=True, slots=True)
class Problem:
    """One contract violation; `subcode` is the error_subcode Meta answers it with."""

    path: str
    problem: str
    subcode: int = g.SUBCODE_FIELD

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(slots=True)
class Judgement:
    """The verdict on one request: the refusal (if any), every problem, the decoded events."""

    events: list[dict[str, Any]] = field(default_factory=list)
    request_error: g.GraphError | None = None
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # accepted, but worth a look

    @property
    def error(self) -> g.GraphError | None:
        if self.request_error is not None:
            return self.request_error
        if self.problems:
            first = self.problems[0]
            return g.event_error(first.subcode, str(first))
        return None

    @property
    def errors(self) -> list[str]:
        if self.request_error is not None:
            return [self.request_error.message]
        return [str(p) for p in self.problems]


def judge(params: dict[str, Any], now: float, max_problems: int = 20) -> Judgement:
    """Judge a request's merged parameters at time `now`; any problem refuses the whole request."""
    out = Judgement()
    if "data" not in params:
        out.request_error = g.param_error("The parameter data is required")
        return out
    data, why = decode_data(params["data"])
    if data is None:
        out.request_error = g.param_error(why or "param data must be an array.")
        return out
    if not data:
        out.request_error = g.param_error("param data must contain at least 1 event.")
        return out
    if len(data) > MAX_EVENTS:
        out.request_error = g.param_error(f"param data must contain at most {MAX_EVENTS} events.")
        return out
    for key in TOP_STR_PARAMS:
        if key in params and type(params[key]) is not str:
            out.request_error = g.param_error(f"param {key} must be a string.")
            return out
    for key in DPO_KEYS:
        if key in params:
            out.notices.append(f"{key}: at the request's top level; Meta reads it in each event")
    for i, item in enumerate(data):
        if len(out.problems) >= max_problems:
            break
        ev = decode_event(item)
        path = f"data.{i}"
        if type(ev) is not dict:
            out.problems.append(Problem(path, f"{NOT_OBJECT} (or a JSON-encoded object)"))
            continue
        _check_event(ev, path, now, out)
        out.events.append(ev)
    del out.problems[max_problems:]
    return out


def _check_event(ev: dict[str, Any], path: str, now: float, out: Judgement) -> None:
    problems = out.problems
    name = ev.get("event_name")
    if name is None:
        problems.append(Problem(f"{path}.event_name", MISSING))
    elif type(name) is not str or not name:
        problems.append(Problem(f"{path}.event_name", NOT_STRING))
    source = ev.get("action_source")
    if source is None:
        problems.append(Problem(f"{path}.action_source", MISSING))
    elif source not in ACTION_SOURCES:
        problems.append(
            Problem(f"{path}.action_source", "Must be one of: " + ", ".join(sorted(ACTION_SOURCES)))
        )
    _check_time(ev.get("event_time"), source, f"{path}.event_time", now, problems)
    if "event_id" in ev:
        eid = ev["event_id"]
        if type(eid) is not str:
            problems.append(Problem(f"{path}.event_id", NOT_STRING))
        elif not eid:
            # An empty id would make every such event a duplicate of the first one.
            problems.append(Problem(f"{path}.event_id", "Must not be empty"))
    if "test_event_code" in ev:
        problems.append(Problem(
            f"{path}.test_event_code", "Unknown field; it belongs at the request's top level"
        ))
    url = ev.get("event_source_url")
    if url is None:
        if source == "website":
            problems.append(
                Problem(f"{path}.event_source_url", f"{MISSING} (action_source website)")
            )
    elif type(url) is not str or not url.startswith(("http://", "https://")):
        problems.append(Problem(f"{path}.event_source_url", "Must be an http(s) URL"))
    if "referrer_url" in ev and type(ev["referrer_url"]) is not str:
        problems.append(Problem(f"{path}.referrer_url", NOT_STRING))
    if "opt_out" in ev and type(ev["opt_out"]) is not bool:
        problems.append(Problem(f"{path}.opt_out", NOT_BOOLEAN))
    if "user_data" not in ev:
        problems.append(Problem(f"{path}.user_data", MISSING))
    else:
        _check_user_data(ev["user_data"], source, f"{path}.user_data", out)
    if "custom_data" in ev:
        _check_custom_data(ev["custom_data"], f"{path}.custom_data", problems)
    if name == "Purchase":
        _check_purchase(ev.get("custom_data"), f"{path}.custom_data", problems)
    _check_privacy(ev, path, problems)
    if source == "app" and "app_data" not in ev:
        problems.append(Problem(f"{path}.app_data", f"{MISSING} (action_source app)"))
    for key in ("app_data", "original_event_data", "attribution_data"):
        if key in ev and type(ev[key]) is not dict:
            problems.append(Problem(f"{path}.{key}", NOT_OBJECT))


def _check_time(t: Any, source: Any, path: str, now: float, problems: list[Problem]) -> None:
    if t is None:
        problems.append(Problem(path, MISSING))
    elif type(t) is not int:
        problems.append(Problem(path, f"{NOT_INTEGER} (Unix seconds)"))
    elif t >= MAX_EVENT_TIME:
        problems.append(Problem(path, "Must be Unix seconds, not milliseconds"))
    elif t <= 0:
        problems.append(Problem(path, "Must be a positive Unix timestamp in seconds"))
    elif t > now + FUTURE_SKEW_S:
        problems.append(Problem(path, "Must not be in the future"))
    else:
        window, days = (STORE_WINDOW_S, 62) if source == "physical_store" else (WINDOW_S, 7)
        if now - t > window:
            problems.append(
                Problem(path, f"more than {days} days before the request", g.SUBCODE_TOO_OLD)
            )


def _check_user_data(ud: Any, source: Any, path: str, out: Judgement) -> None:
    problems = out.problems
    if type(ud) is not dict:
        problems.append(Problem(path, NOT_OBJECT))
        return
    given = 0
    for key, value in ud.items():
        if value in ("", [], None):  # "not given": peers send empty keys for what they lack
            continue
        given += 1
        kpath = f"{path}.{key}"
        if key in HASHED_KEYS:
            _check_hashed(key, value, kpath, problems)
        elif key == "external_id":
            _check_external_id(value, kpath, out)
        elif key == "client_ip_address":
            if type(value) is not str or not _is_ip(value):
                problems.append(Problem(kpath, "Not a valid IPv4 or IPv6 address (never hashed)"))
        elif key == "client_user_agent":
            if type(value) is not str:
                problems.append(Problem(kpath, NOT_STRING))
            elif _sha256_any_case(value):
                problems.append(Problem(kpath, "Must not be hashed"))
        elif key in ("fbc", "fbp"):
            why = _browser_id_problem(key, value)
            if why is not None:
                problems.append(Problem(kpath, why))
        elif key in PLAIN_STR_KEYS:
            if type(value) is not str:
                problems.append(Problem(kpath, NOT_STRING))
        elif key in ID_KEYS and not (
            type(value) is int or (type(value) is str and _digits(value))
        ):
            problems.append(Problem(kpath, "Must be a numeric id"))
    if given == 0:
        problems.append(Problem(path, "At least one customer information parameter is required"))
    if source == "website" and not ud.get("client_user_agent"):
        problems.append(
            Problem(f"{path}.client_user_agent", f"{MISSING} (action_source website)")
        )


def _check_hashed(key: str, value: Any, path: str, problems: list[Problem]) -> None:
    items = value if type(value) is list else [value]
    for j, item in enumerate(items):
        ipath = f"{path}.{j}" if type(value) is list else path
        if type(item) is not str:
            problems.append(Problem(ipath, NOT_STRING))
        elif item == EMPTY_SHA256:
            problems.append(
                Problem(ipath, "SHA-256 of an empty string matches nobody; leave the key out")
            )
        elif _sha256_hex(item) is None:
            if _sha256_any_case(item):
                problems.append(Problem(ipath, "SHA-256 hex digest must be lowercase"))
            else:
                problems.append(Problem(ipath, NOT_HASHED + HASH_HINTS.get(key, "")))


def _check_external_id(value: Any, path: str, out: Judgement) -> None:
    # Meta recommends hashing external_id but takes it as sent (its own SDK sends it raw): it
    # must only match the Pixel's form, so an unhashed one is a notice, not a refusal.
    items = value if type(value) is list else [value]
    unhashed = False
    for j, item in enumerate(items):
        if type(item) is not str:
            out.problems.append(Problem(f"{path}.{j}" if type(value) is list else path, NOT_STRING))
        elif _sha256_hex(item) is None:
            unhashed = True
    if unhashed:
        out.notices.append(f"{path}: not hashed (accepted; Meta recommends SHA-256)")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _browser_id_problem(key: str, value: Any) -> str | None:
    """Why an fbc/fbp is not `fb.<subdomain index>.<ms>.<payload>[.<appendix>]`, or None."""
    if type(value) is not str:
        return NOT_STRING
    if _sha256_any_case(value):
        return "Must not be hashed: send the cookie value as is"
    parts = value.split(".")
    shape = (
        "Must be fb.<subdomain index>.<creation time in ms>."
        + ("<fbclid>" if key == "fbc" else "<random number>")
    )
    if len(parts) not in (4, 5) or parts[0] != "fb" or not _digits(parts[1]) or not parts[3]:
        return shape
    if not _digits(parts[2]):
        return shape
    if len(parts[2]) != 13:
        # Seconds here are a known bug class (meta-capi.md §2).
        return "Creation time must be Unix milliseconds (13 digits)"
    if key == "fbp" and not _digits(parts[3]):
        return shape
    if len(parts) == 5:
        appendix = parts[4]
        if not (appendix in SHORT_APPENDICES or (len(appendix) == 8 and _base64url(appendix))):
            return "Appendix (5th segment) must be Meta's Parameter Builder appendix"
    return None


def _check_custom_data(cd: Any, path: str, problems: list[Problem]) -> None:
    if type(cd) is not dict:
        problems.append(Problem(path, NOT_OBJECT))
        return
    for key, value in cd.items():
        check = _CUSTOM_CHECKS.get(key)
        if check is not None:
            why = check(value)
            if why is not None:
                problems.append(Problem(f"{path}.{key}", why))
    if "value" in cd and "currency" not in cd:
        problems.append(Problem(f"{path}.currency", f"{MISSING} (required with value)"))
    contents = cd.get("contents")
    if type(contents) is list:
        for j, item in enumerate(contents):
            _check_content(item, f"{path}.contents.{j}", problems)


def _check_purchase(cd: Any, path: str, problems: list[Problem]) -> None:
    if type(cd) is not dict or "value" not in cd:
        problems.append(
            Problem(f"{path}.value", "Required for Purchase events", g.SUBCODE_PURCHASE_VALUE)
        )


def _check_content(item: Any, path: str, problems: list[Problem]) -> None:
    if type(item) is not dict:
        problems.append(Problem(path, NOT_OBJECT))
        return
    cid = item.get("id")
    if cid is None:
        hint = " (content_id is TikTok's name)" if "content_id" in item else ""
        problems.append(Problem(f"{path}.id", MISSING + hint))
    elif type(cid) is not str or not cid:
        problems.append(Problem(f"{path}.id", NOT_STRING))
    if "price" in item:
        problems.append(Problem(f"{path}.price", "Unknown field; Meta's contents take item_price"))
    if "quantity" in item and type(item["quantity"]) is not int:
        problems.append(Problem(f"{path}.quantity", NOT_INTEGER))
    if "item_price" in item and not _is_number(item["item_price"]):
        problems.append(Problem(f"{path}.item_price", NOT_NUMBER))
    for key in ("title", "description", "brand", "category"):
        if key in item and type(item[key]) is not str:
            problems.append(Problem(f"{path}.{key}", NOT_STRING))
    if "delivery_category" in item and item["delivery_category"] not in DELIVERY_CATEGORIES:
        problems.append(Problem(f"{path}.delivery_category", _one_of(DELIVERY_CATEGORIES)))


def _check_privacy(ev: dict[str, Any], path: str, problems: list[Problem]) -> None:
    if "data_processing_options" in ev:
        dpo = ev["data_processing_options"]
        if type(dpo) is not list or any(o != "LDU" for o in dpo):
            problems.append(
                Problem(f"{path}.data_processing_options", 'Must be [] or ["LDU"]')
            )
    for key in ("data_processing_options_country", "data_processing_options_state"):
        if key in ev and (type(ev[key]) is not int or ev[key] < 0):
            # 0 asks Meta to geolocate; 1 is the United States, 1000 California.
            problems.append(Problem(f"{path}.{key}", "Must be a non-negative integer"))


def _is_number(value: Any) -> bool:
    # bool is an int in Python, but true/false is not a number in JSON.
    return type(value) is int or type(value) is float


def _one_of(allowed: frozenset[str]) -> str:
    return "Must be one of: " + ", ".join(sorted(allowed))


def _str(value: Any) -> str | None:
    return None if type(value) is str else NOT_STRING


def _int(value: Any) -> str | None:
    return None if type(value) is int else NOT_INTEGER


def _number(value: Any) -> str | None:
    return None if _is_number(value) else NOT_NUMBER


def _currency_code(value: Any) -> str | None:
    if type(value) is str and _currency(value):
        return None
    return "Must be an ISO 4217 code (3 letters)"


def _str_list(value: Any) -> str | None:
    if type(value) is not list:
        return NOT_LIST
    return None if all(type(v) is str for v in value) else "Must be a list of strings"


def _list(value: Any) -> str | None:
    return None if type(value) is list else NOT_LIST


def _content_type(value: Any) -> str | None:
    return None if value in CONTENT_TYPES else _one_of(CONTENT_TYPES)


def _delivery_category(value: Any) -> str | None:
    return None if value in DELIVERY_CATEGORIES else _one_of(DELIVERY_CATEGORIES)


_CUSTOM_CHECKS: Final[dict[str, Callable[[Any], str | None]]] = {
    "value": _number,
    "predicted_ltv": _number,
    "net_revenue": _number,
    "currency": _currency_code,
    "content_ids": _str_list,
    "contents": _list,
    "content_type": _content_type,
    "content_name": _str,
    "content_category": _str,
    "order_id": _str,
    "search_string": _str,
    "status": _str,
    "num_items": _int,
    "delivery_category": _delivery_category,
}
