"""Validate one incoming event object (SPEC §3.3) into a hashed `Event`, or say what is wrong."""

from __future__ import annotations

import difflib
import ipaddress
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pixelrelay.destinations.tiktok import mapping
from pixelrelay.errors import Problem
from pixelrelay.model import Consent, ConsentState, Event, Page, Source, User
from pixelrelay.pipeline.normalize import hash_email, hash_external_id, hash_phone
from pixelrelay.pipeline.properties import json_type as _type
from pixelrelay.pipeline.properties import opt_str as _opt_str
from pixelrelay.pipeline.properties import parse_properties as _properties

MAX_FUTURE_S = 300  # tolerated clock skew of the sender
MAX_IDS_PER_KEY = 10  # email/phone/external_id values per event
_TOP = ("event", "event_id", "timestamp", "source", "session_id", "order_source", "user",
        "page", "properties", "consent")
_USER = ("email", "phone", "external_id", "ttclid", "ttp", "ip", "user_agent", "locale")
_PAGE = ("url", "referrer")
_CONSENT = ("marketing", "ad_user_data", "ad_personalization", "region")
_KNOWN_SETS: dict[tuple[str, ...], frozenset[str]] = {
    keys: frozenset(keys) for keys in (_TOP, _USER, _PAGE, _CONSENT)}
_SOURCES = {s.value: s for s in Source}
_STATES = {s.value: s for s in ConsentState}
_EMPTY_USER = User()
_EMPTY_PAGE = Page()
_EMPTY_CONSENT = Consent()


@dataclass(frozen=True, slots=True)
class ParseResult:
    """`event` is None exactly when `problems` is non-empty."""

    event: Event | None
    problems: tuple[Problem, ...]


def parse_event(raw: object, *, now: float, phone_region: str = "",
                tiktok_name: Callable[[str], str] = mapping.default_tiktok_name,
                new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> ParseResult:
    """Check every field (collecting all problems), hash the match keys, fill the defaults."""
    if not isinstance(raw, dict):
        return ParseResult(None, (Problem("", "event must be a JSON object"),))
    p: list[Problem] = []
    warnings: list[str] = []
    _unknown_keys(raw, "", _TOP, p)
    name = _event_name(raw.get("event"), tiktok_name, p)
    event_id = _event_id(raw.get("event_id"), p)
    event_time = _timestamp(raw.get("timestamp"), now, p)
    source = _source(raw.get("source"), p)
    user = _user(raw.get("user"), phone_region, p, warnings)
    page = _page(raw.get("page"), p)
    properties = _properties(raw.get("properties"), p)
    consent = _consent(raw.get("consent"), p)
    session_id = _opt_str(raw.get("session_id"), "session_id", 256, p)
    order_source = _opt_str(raw.get("order_source"), "order_source", 64, p)
    if p:
        return ParseResult(None, tuple(p))
    if event_id is None:
        order_id = properties.get("order_id")
        # Deterministic so that the browser tag and every retry of the sender agree on it.
        event_id = (f"ord_{order_id}_{mapping.snake_case(tiktok_name(name))}"
                    if order_id else new_id())
    return ParseResult(Event(
        name=name, event_id=event_id, event_time=event_time, source=source, user=user,
        page=page, properties=properties, consent=consent, session_id=session_id,
        order_source=order_source, received_at=now, warnings=tuple(warnings)), ())


def too_old(event_time: int, now: float, max_age_days: int) -> Problem | None:
    """A destination's age window: TikTok will not attribute events older than this."""
    age = now - event_time
    if age > max_age_days * 86400:
        return Problem("timestamp", f"is {age / 86400:.1f} days old; older than the "
                                    f"{max_age_days}-day window (max_age_days)")
    return None


def _unknown_keys(obj: dict[Any, Any], prefix: str, known: tuple[str, ...],
                  p: list[Problem]) -> None:
    if obj.keys() <= _KNOWN_SETS[known]:  # the common case, checked in C
        return
    for k in obj:
        if k not in known:
            key = str(k)[:100]
            hint = difflib.get_close_matches(key, known, n=1)
            p.append(Problem(prefix + key, "unknown field" + (
                f"; did you mean {prefix}{hint[0]}?" if hint else f" (known: {', '.join(known)})")))


def _event_name(v: object, tiktok_name: Callable[[str], str], p: list[Problem]) -> str:
    if v is None:
        p.append(Problem("event", "is required"))
        return ""
    name = _opt_str(v, "event", 100, p)
    if name is None:
        if isinstance(v, str) and len(v) <= 100:
            p.append(Problem("event", "must not be empty"))
        return ""
    # A near-miss in casing is a bug on the sender's side: TikTok would count it as a custom
    # event that optimises nothing. A destination that maps the exact name opts out.
    suggestions = mapping.casing_suggestions(name)
    if suggestions and tiktok_name(name) == name:
        p.append(Problem("event", "event names are case-sensitive: use "
                                  + " or ".join(repr(s) for s in suggestions)))
    return name


def _event_id(v: object, p: list[Problem]) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        p.append(Problem("event_id", f"must be a string, got {_type(v)}"))
        return None
    if len(v) > 256:
        p.append(Problem("event_id", "is longer than 256 characters"))
        return None
    return v


def _timestamp(v: object, now: float, p: list[Problem]) -> int:
    if v is None:
        return int(now)
    secs: float | None = None
    if isinstance(v, int | float) and not isinstance(v, bool):
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
    t = int(secs)
    if t > now + MAX_FUTURE_S:
        p.append(Problem("timestamp", f"is in the future ({t - now:.0f} s ahead of the server "
                                      f"clock; at most {MAX_FUTURE_S} s allowed)"))
    return t


def _source(v: object, p: list[Problem]) -> Source:
    if v is None:
        return Source.WEB
    src = _SOURCES.get(v.lower()) if isinstance(v, str) else None
    if src is None:
        p.append(Problem("source", "must be one of web, app, offline, crm"))
        return Source.WEB
    return src


def _user(v: object, region: str, p: list[Problem], warnings: list[str]) -> User:
    if v is None:
        return _EMPTY_USER
    if not isinstance(v, dict):
        p.append(Problem("user", f"must be an object, got {_type(v)}"))
        return _EMPTY_USER
    _unknown_keys(v, "user.", _USER, p)
    phone_why = (f"not a valid phone number for region {region}" if region else
                 "not a valid phone number (give it as +<country code>..., or set "
                 "default_phone_region)")
    ip = _opt_str(v.get("ip"), "user.ip", 64, p)
    if ip is not None:
        ip = _ip(ip)
        if ip is None:
            p.append(Problem("user.ip", "is not a valid IPv4 or IPv6 address"))
    return User(
        email=_hashed(v.get("email"), "user.email", hash_email, "not a valid email address",
                      p, warnings),
        phone=_hashed(v.get("phone"), "user.phone", lambda s: hash_phone(s, region), phone_why,
                      p, warnings),
        external_id=_hashed(v.get("external_id"), "user.external_id", hash_external_id,
                            "empty", p, warnings),
        ttclid=_opt_str(v.get("ttclid"), "user.ttclid", 512, p),
        ttp=_opt_str(v.get("ttp"), "user.ttp", 512, p),
        ip=ip,
        user_agent=_opt_str(v.get("user_agent"), "user.user_agent", 1024, p, truncate=True),
        locale=_opt_str(v.get("locale"), "user.locale", 35, p),
    )


# ipaddress costs ~5 µs a call; one visitor sends many events from the same address.
@lru_cache(maxsize=4096)
def _ip(s: str) -> str | None:
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return None


def _hashed(v: object, path: str, fn: Callable[[str], str | None], why: str,
            p: list[Problem], warnings: list[str]) -> tuple[str, ...]:
    """Hash one value or a list of them; an unusable one is dropped with a warning.

    The warning names the field and the reason but never the value: it is personal data.
    """
    if v is None:
        return ()
    if isinstance(v, str) and v.strip():  # the common case: one value
        h = fn(v)
        if h is None:
            warnings.append(f"{path}: {why}; dropped")
            return ()
        return (h,)
    single = isinstance(v, str)
    items: list[object] = [v] if single else v if isinstance(v, list) else []
    if not single and not isinstance(v, list):
        p.append(Problem(path, f"must be a string or a list of strings, got {_type(v)}"))
        return ()
    if len(items) > MAX_IDS_PER_KEY:
        p.append(Problem(path, f"has more than {MAX_IDS_PER_KEY} values"))
        return ()
    out: list[str] = []
    for i, item in enumerate(items):
        ipath = path if single else f"{path}.{i}"
        if not isinstance(item, str):
            p.append(Problem(ipath, f"must be a string, got {_type(item)}"))
            continue
        if not item.strip():
            continue
        h = fn(item)
        if h is None:
            warnings.append(f"{ipath}: {why}; dropped")
        elif h not in out:
            out.append(h)
    return tuple(out)


def _page(v: object, p: list[Problem]) -> Page:
    if v is None:
        return _EMPTY_PAGE
    if not isinstance(v, dict):
        p.append(Problem("page", f"must be an object, got {_type(v)}"))
        return _EMPTY_PAGE
    _unknown_keys(v, "page.", _PAGE, p)
    return Page(url=_opt_str(v.get("url"), "page.url", 4096, p, truncate=True),
                referrer=_opt_str(v.get("referrer"), "page.referrer", 4096, p, truncate=True))


def _consent(v: object, p: list[Problem]) -> Consent:
    if v is None:
        return _EMPTY_CONSENT
    if not isinstance(v, dict):
        p.append(Problem("consent", f"must be an object, got {_type(v)}"))
        return _EMPTY_CONSENT
    # A mistyped consent key must not silently read as "no statement".
    _unknown_keys(v, "consent.", _CONSENT, p)
    states: list[ConsentState | None] = []
    for key in _CONSENT[:3]:
        raw = v.get(key)
        state = _STATES.get(raw.lower()) if isinstance(raw, str) else None
        if raw is not None and state is None:
            p.append(Problem(f"consent.{key}", "must be granted or denied"))
        states.append(state)
    region = _opt_str(v.get("region"), "consent.region", 8, p)
    return Consent(marketing=states[0], ad_user_data=states[1], ad_personalization=states[2],
                   region=region.upper() if region else None)

