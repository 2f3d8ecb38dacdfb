"""Validate one incoming event object (SPEC §3.3) into a hashed `Event`, or say what is wrong.

Unknown keys are dropped with a Notice and the event is kept; a known field with a wrong
type or value refuses the event, naming the field.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from pixelrelay.errors import Notice, Problem
from pixelrelay.event_ids import order_event_id
from pixelrelay.model import (
    ACTION_SOURCES,
    FOREIGN_PHONE_HASHES,
    JSON,
    Ad,
    App,
    Channel,
    Consent,
    ConsentState,
    Event,
    Lead,
    Page,
    Source,
    User,
    click_ids_of,
    declared_ids,
)
from pixelrelay.names import snake_case
from pixelrelay.pipeline.clickid import landing_ids
from pixelrelay.pipeline.extras import parse_ad, parse_app, parse_device, parse_lead
from pixelrelay.pipeline.gid import plain_id
from pixelrelay.pipeline.pii import (
    Found,
    looks_like_email,
    looks_personal,
    scrub_id,
    scrub_properties,
    scrub_text,
    scrub_url,
    scrub_values,
)
from pixelrelay.pipeline.properties import parse_properties
from pixelrelay.pipeline.readers import (
    NUL_REASON,
    NUMBER,
    boolean,
    is_blank,
    json_type,
    may_hold_nul,
    nul_path,
    opt_str,
    unknown_keys,
)
from pixelrelay.pipeline.user import parse_user, plain_user, user_region, with_found
from pixelrelay.records import record

MAX_FUTURE_S = 300  # tolerated clock skew of the sender
TOP_KEYS = frozenset({
    "event", "event_id", "timestamp", "event_time", "source", "session_id", "order_source",
    "action_source",
    "user", "page", "properties", "consent", "app", "ad", "lead", "device",
    "limited_data_use", "test_event_code",
})
PAGE_KEYS = frozenset({"url", "referrer"})
CONSENT_KEYS = ("marketing", "ad_user_data", "ad_personalization", "region")
# Google Consent Mode's names, as sites already hold them: ad_storage is what `marketing`
# means here; the storage purposes that do not concern advertising are read and ignored.
_CONSENT_MODE = {"ad_storage": "marketing"}
_CONSENT_IGNORED = frozenset({"analytics_storage", "functionality_storage",
                              "personalization_storage", "security_storage"})
_OWN_CONSENT = frozenset(CONSENT_KEYS)
_CONSENT_SET = _OWN_CONSENT | frozenset(_CONSENT_MODE) | _CONSENT_IGNORED
_BOOL_STATES = {True: ConsentState.GRANTED, False: ConsentState.DENIED}
_SOURCES = {s.value: s for s in Source}
_STATES = {s.value: s for s in ConsentState}
_AS_SENT: dict[object, ConsentState | None] = {None: None}  # a state's word, or not given
_AS_SENT.update(_STATES)
_EMPTY_PAGE = Page()
_EMPTY_CONSENT = Consent()
NameMap = Callable[[str, str], str]  # (incoming name, source) -> a destination's name


def _same_name(name: str, source: str) -> str:
    return name


@record
class ParseResult:
    """`event` is None exactly when `problems` is non-empty."""

    event: Event | None
    problems: tuple[Problem, ...]


def parse_event(raw: object, *, now: float, phone_region: str = "",
                dest_name: NameMap = _same_name,
                new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                nul_free: bool = False, channel: Channel = Channel.SERVER,
                keep_plain: bool = False) -> ParseResult:
    """Check every field (collecting all problems), hash the match keys, fill the defaults.

    `nul_free`: the caller knows that no key or string holds U+0000 (the JSON text it decoded
    has no escape of it), so the event's own check is skipped. `channel`: how it came in
    (given here: a dataclasses.replace afterwards cost 7 µs an event). `keep_plain`: a
    destination hashes the personal keys its own way from plaintext (Event.plain).
    """
    if not isinstance(raw, dict):
        return ParseResult(None, (Problem("", "event must be a JSON object"),))
    nul = None if nul_free else _nul_field(raw)
    if nul is not None:
        return ParseResult(None, (Problem(nul, NUL_REASON),))
    p: list[Problem] = []
    notices: list[Notice] = []
    unknown_keys(raw, "", TOP_KEYS, notices)
    # A user's own two-letter country is where their phone numbers are national (an order's
    # billing country, an import row's `country`); the configured region is the fallback.
    phone_region = user_region(raw.get("user"), phone_region)
    name = _event_name(raw.get("event"), p, phone_region)
    event_id = _event_id(raw.get("event_id"), p)
    stamp = raw.get("timestamp")
    event_time = _timestamp(raw.get("event_time") if stamp is None else stamp, now, p)
    source = _source(raw.get("source"), p)
    user = parse_user(raw.get("user"), phone_region, p, notices,
                      foreign_phone_hashes=channel in FOREIGN_PHONE_HASHES)
    page = _page(raw.get("page"), p, notices)
    properties = parse_properties(raw.get("properties"), p)
    consent = _consent(raw.get("consent"), p, notices)
    # The parts most events lack are read only when present (a call each would cost more
    # than reading them).
    app: App | None = None
    ad: Ad | None = None
    lead: Lead | None = None
    device: JSON = {}
    limited: bool | None = None
    test_code = session_id = order_source = action_source = None
    if (v := raw.get("app")) is not None:
        app = parse_app(v, p, notices)
    if (v := raw.get("ad")) is not None:
        ad = parse_ad(v, p, notices)
    if (v := raw.get("lead")) is not None:
        lead = parse_lead(v, p, notices)
    if (v := raw.get("device")) is not None:
        device = parse_device(v, p)
    if (v := raw.get("limited_data_use")) is not None:
        limited = boolean(v, "limited_data_use", p)
    if (v := raw.get("test_event_code")) is not None:
        test_code = opt_str(v, "test_event_code", 64, p)
    if (v := raw.get("session_id")) is not None:
        session_id = opt_str(v, "session_id", 256, p)
    if (v := raw.get("order_source")) is not None:
        order_source = opt_str(v, "order_source", 64, p)
    if (v := raw.get("action_source")) is not None:
        action_source = _action_source(v, p)
    if source is Source.CRM and lead is None and not p:
        p.append(Problem("lead.lead_id", "is required for source crm events (the lead id "
                                         "from TikTok's lead export)"))
    if source is Source.APP and app is None and not p:
        p.append(Problem("app.app_id", "is required for source app events"))
    if p:
        return ParseResult(None, tuple(p))
    # Free-form parts must not carry raw personal data into the store (issue: properties.email,
    # ?email= in a URL): named keys become match keys, anything else that looks like one goes.
    found = Found()
    properties = scrub_properties(properties, found, phone_region)
    page = Page(url=scrub_url(page.url, "page.url", found, phone_region),
                referrer=scrub_url(page.referrer, "page.referrer", found, phone_region))
    device = scrub_values(device, "device", found, phone_region) if device else device
    user = _scrub_user_text(user, found, phone_region)
    if app is not None and app.app_name:
        app = replace(app, app_name=scrub_text(app.app_name, "app.app_name", found,
                                               phone_region))
    if session_id is not None:
        session_id = scrub_id(session_id, "session_id", found, phone_region)
    if order_source is not None:
        order_source = scrub_id(order_source, "order_source", found, phone_region)
    notices += found.notices
    if found.emails or found.phones:
        user = with_found(user, found, phone_region)
    plain = plain_user(raw.get("user"), phone_region, found) if keep_plain else None
    user = _clicked(user, page.url, ad.callback if ad and source is Source.WEB else None,
                    event_time)
    if event_id is None:
        order_id = properties.get("order_id")
        # Deterministic so that the browser tag and every retry of the sender agree on it.
        event_id = (order_event_id(order_id, snake_case(dest_name(name, source.value)))
                    if order_id else new_id())
    return ParseResult(Event(
        name=name, event_id=event_id, event_time=event_time, source=source, user=user,
        page=page, properties=properties, consent=consent, session_id=session_id,
        order_source=order_source, action_source=action_source, received_at=now,
        warnings=tuple(notices), app=app, ad=ad, lead=lead, device=device,
        limited_data_use=limited, test_event_code=test_code, channel=channel, plain=plain), ())


def too_old(event_time: int, now: float, max_age_days: int) -> Problem | None:
    """A destination's age window: TikTok will not attribute events older than this."""
    age = now - event_time
    if age > max_age_days * 86400:
        return Problem("timestamp", f"is older than the {max_age_days}-day window "
                                    "(max_age_days)", f"{age / 86400:.1f} days old")
    return None


def _nul_field(raw: dict[str, object]) -> str | None:
    """Where the event holds U+0000, if anywhere. orjson writes it as this escape, so one
    C-speed encode and search stands in for a walk of every event; a value orjson cannot
    encode (an integer past 64 bits, from a caller that built the dict) takes the walk."""
    try:
        if not may_hold_nul(orjson.dumps(raw)):
            return None
    except orjson.JSONEncodeError:
        pass
    return nul_path(raw)


def _scrub_user_text(user: User, found: Found, region: str) -> User:
    """The user's plain text keys (hashed ones hold no raw value) without personal data."""
    fills: dict[str, Any] = {}
    if user.user_agent is not None:
        ua = scrub_text(user.user_agent, "user.user_agent", found, region)
        if ua != user.user_agent:
            fills["user_agent"] = ua
    for key in ("locale", "idfv"):
        value = getattr(user, key)
        if value is not None and scrub_id(value, f"user.{key}", found, region) is None:
            fills[key] = None
    if user.click_ids:
        kept = {k: v for k, v in user.click_ids
                if scrub_id(v, f"user.{k}", found, region) is not None}
        if len(kept) != len(user.click_ids):
            fills["click_ids"] = click_ids_of(kept)
    return replace(user, **fills) if fills else user


def _clicked(user: User, url: str | None, callback: str | None, event_time: int) -> User:
    """The declared click ids the event lacks, from the landing URL it names (a server event's
    page.url, clicked at `event_time`), else from a web event's ad.callback where the id
    stands for one."""
    found = {k: v for k, v in landing_ids(url, event_time).items() if user.click_id(k) is None}
    if callback is not None:
        for spec in declared_ids().values():
            if spec.ad_callback and spec.key not in found and user.click_id(spec.key) is None:
                found[spec.key] = callback
    return user.with_click_ids(found) if found else user


def _action_source(v: object, p: list[Problem]) -> str | None:
    if is_blank(v):
        return None
    found = v.strip().lower() if isinstance(v, str) else None
    if found not in ACTION_SOURCES:
        p.append(Problem("action_source",
                         "must be one of " + ", ".join(sorted(ACTION_SOURCES))))
        return None
    return found


def _event_name(v: object, p: list[Problem], region: str) -> str:
    if v is None:
        p.append(Problem("event", "is required"))
        return ""
    name = opt_str(v, "event", 100, p)
    if name is None:
        if isinstance(v, str) and len(v) <= 100:
            p.append(Problem("event", "must not be empty"))
        return ""
    if looks_personal(name, region):
        # A name is stored, counted and sent as it is: it cannot be scrubbed, only refused.
        p.append(Problem("event", "looks like it holds an email address or phone number; "
                                  "event names are stored, counted and sent as they are"))
        return ""
    return name


def _event_id(v: object, p: list[Problem]) -> str | None:
    if is_blank(v):
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        p.append(Problem("event_id", f"must be a string, got {json_type(v)}"))
        return None
    if len(v) > 256:
        p.append(Problem("event_id", "is longer than 256 characters"))
        return None
    if looks_like_email(v):
        p.append(Problem("event_id", "looks like it holds an email address; an event_id is "
                                     "stored and sent as it is (use an order or message id)"))
        return None
    return plain_id(v.strip())


def _timestamp(v: object, now: float, p: list[Problem]) -> int:
    if is_blank(v):
        return int(now)
    secs: float | None = None
    if isinstance(v, NUMBER) and not isinstance(v, bool):
        secs = float(v)
    elif isinstance(v, str):
        s = v.strip()
        try:
            secs = float(s)
        except ValueError:
            try:
                dt = datetime.fromisoformat(s)
            except ValueError:
                pass
            else:
                secs = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    if secs is None or not math.isfinite(secs) or secs <= 0:
        p.append(Problem("timestamp", "must be Unix seconds, Unix milliseconds, or an ISO 8601 "
                                      "date-time such as 2026-04-23T11:23:00Z"))
        return 0
    if secs > 1e11:  # 1e11 s is the year 5138; anything larger is milliseconds
        secs /= 1000
    if secs > 1e11:
        p.append(Problem("timestamp", "is too far in the future"))
        return 0
    t = int(secs)
    if t > now + MAX_FUTURE_S:
        p.append(Problem("timestamp", f"is in the future (at most {MAX_FUTURE_S} s ahead of the "
                                      "server clock allowed)", f"{t - now:.0f} s ahead"))
    return t


def _source(v: object, p: list[Problem]) -> Source:
    if is_blank(v):
        return Source.WEB
    src = _SOURCES.get(v.strip().lower()) if isinstance(v, str) else None
    if src is None:
        p.append(Problem("source", "must be one of web, app, offline, crm"))
        return Source.WEB
    return src


def _page(v: object, p: list[Problem], notices: list[Notice]) -> Page:
    if is_blank(v):
        return _EMPTY_PAGE
    if not isinstance(v, dict):
        p.append(Problem("page", f"must be an object, got {json_type(v)}"))
        return _EMPTY_PAGE
    unknown_keys(v, "page.", PAGE_KEYS, notices)
    return Page(url=opt_str(v.get("url"), "page.url", 4096, p, truncate=True),
                referrer=opt_str(v.get("referrer"), "page.referrer", 4096, p, truncate=True))


def _consent(v: object, p: list[Problem], notices: list[Notice]) -> Consent:
    if is_blank(v):
        return _EMPTY_CONSENT
    if not isinstance(v, dict):
        p.append(Problem("consent", f"must be an object, got {json_type(v)}"))
        return _EMPTY_CONSENT
    unknown_keys(v, "consent.", _CONSENT_SET, notices)
    if v.keys() <= _OWN_CONSENT:  # the common case: our own names and words, as the tag sends
        try:
            marketing, ad_user_data, ad_personalization = (
                _AS_SENT[v.get("marketing")], _AS_SENT[v.get("ad_user_data")],
                _AS_SENT[v.get("ad_personalization")])
        except (KeyError, TypeError):
            pass  # other spellings, booleans, wrong types: the general reading below
        else:
            region = opt_str(v.get("region"), "consent.region", 8, p)
            return Consent(marketing=marketing, ad_user_data=ad_user_data,
                           ad_personalization=ad_personalization,
                           region=region.upper() if region else None)
    states: list[ConsentState | None] = []
    for key in CONSENT_KEYS[:3]:
        given = next((k for k, means in _CONSENT_MODE.items() if means == key and k in v), key)
        raw = v.get(key, v.get(given))
        state = (_BOOL_STATES[raw] if isinstance(raw, bool) else
                 _STATES.get(raw.strip().lower()) if isinstance(raw, str) else None)
        if not is_blank(raw) and state is None:
            p.append(Problem(f"consent.{key if key in v else given}",
                             "must be granted or denied"))
        states.append(state)
    region = opt_str(v.get("region"), "consent.region", 8, p)
    return Consent(marketing=states[0], ad_user_data=states[1], ad_personalization=states[2],
                   region=region.upper() if region else None)
