"""Validate an event's `user` object into a `User`: every match key TikTok documents, hashed
as TikTok specifies while it is read, so raw personal data never outlives this function."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

from pixelrelay.errors import Notice, NoticeKind, Problem
from pixelrelay.model import User
from pixelrelay.pipeline.normalize import (
    hash_email,
    hash_external_id,
    hash_gaid,
    hash_idfa,
    hash_name,
    hash_phone,
    hash_zip,
    normalise_place,
)
from pixelrelay.pipeline.pii import Found
from pixelrelay.pipeline.readers import is_blank, json_type, opt_str, unknown_keys

MAX_IDS_PER_KEY = 10  # email/phone/external_id values per event
USER_KEYS = frozenset({
    "email", "phone", "external_id", "ttclid", "ttp", "ip", "user_agent", "locale",
    "first_name", "last_name", "zip_code", "city", "state", "country",
    "idfa", "idfv", "gaid", "att_status",
})
ATT_STATUSES = ("AUTHORIZED", "DENIED", "NOT_DETERMINED", "RESTRICTED", "NOT_APPLICABLE")
_EMPTY = User()


def parse_user(v: object, region: str, p: list[Problem], notices: list[Notice]) -> User:
    if is_blank(v):
        return _EMPTY
    if not isinstance(v, dict):
        p.append(Problem("user", f"must be an object, got {json_type(v)}"))
        return _EMPTY
    unknown_keys(v, "user.", USER_KEYS, notices)
    # Only the keys present are read: an event carries a handful of the 18.
    fields: dict[str, object] = {}
    for key, value in v.items():
        read = _READERS.get(key)
        if read is None or value is None:
            continue
        got = read(value, region, p, notices)
        if got is not None and got != ():
            fields[key] = got
    return User(**fields) if fields else _EMPTY  # type: ignore[arg-type]


def _phone_reason(region: str) -> str:
    return (f"not a valid phone number for region {region}" if region else
            "not a valid phone number (give it as +<country code>..., or set "
            "default_phone_region)")


def _phones(v: object, region: str, p: list[Problem], notices: list[Notice]) -> object:
    def phone(s: str) -> str | None:
        found = hash_phone(s, region)
        if found is None:
            return None
        digest, verified = found
        if not verified:
            notices.append(Notice("user.phone", "a possible number that phonenumbers cannot "
                                                "confirm (a new range?); hashed as E.164",
                                  NoticeKind.UNVERIFIED))
        return digest

    return _hashed(v, "user.phone", phone, _phone_reason(region), p, notices)


def _address(v: object, region: str, p: list[Problem], notices: list[Notice]) -> str | None:
    ip = opt_str(v, "user.ip", 64, p)
    if ip is None:
        return None
    parsed = _ip(ip)
    if parsed is None:
        p.append(Problem("user.ip", "is not a valid IPv4 or IPv6 address"))
    return parsed


Reader = Callable[[object, str, list[Problem], list[Notice]], object]


def _many(key: str, fn: Callable[[str], str | None], why: str) -> Reader:
    path = f"user.{key}"
    return lambda v, region, p, notices: _hashed(v, path, fn, why, p, notices)


def _single(key: str, fn: Callable[[str], str | None]) -> Reader:
    path = f"user.{key}"

    def read(v: object, region: str, p: list[Problem], notices: list[Notice]) -> object:
        found = _hashed(v, path, fn, "not usable", p, notices)
        return found[0] if found else None

    return read


def _text(key: str, cap: int, truncate: bool = False) -> Reader:
    path = f"user.{key}"
    return lambda v, region, p, notices: opt_str(v, path, cap, p, truncate=truncate)


_READERS: dict[str, Reader] = {
    "email": _many("email", hash_email, "not a valid email address"),
    "phone": _phones,
    "external_id": _many("external_id", hash_external_id, "empty"),
    "ttclid": _text("ttclid", 512),
    "ttp": _text("ttp", 512),
    "ip": _address,
    "user_agent": _text("user_agent", 1024, truncate=True),
    "locale": _text("locale", 35),
    "first_name": _single("first_name", hash_name),
    "last_name": _single("last_name", hash_name),
    "zip_code": _single("zip_code", hash_zip),
    "city": _single("city", normalise_place),
    "state": _single("state", normalise_place),
    "country": _single("country", normalise_place),
    "idfa": _single("idfa", hash_idfa),
    "idfv": _text("idfv", 64),
    "gaid": _single("gaid", hash_gaid),
    "att_status": lambda v, region, p, notices: _att_status(v, p),
}
assert set(_READERS) == USER_KEYS


def with_found(user: User, found: Found, region: str) -> User:
    """The user with the emails and phones found in free-form fields, hashed and added."""
    emails = [h for h in map(hash_email, found.emails) if h is not None]
    phones = [h[0] for h in (hash_phone(x, region) for x in found.phones) if h is not None]
    return replace(user,
                   email=tuple(dict.fromkeys((*user.email, *emails)))[:MAX_IDS_PER_KEY],
                   phone=tuple(dict.fromkeys((*user.phone, *phones)))[:MAX_IDS_PER_KEY])


# ipaddress costs ~5 µs a call; one visitor sends many events from the same address.
@lru_cache(maxsize=4096)
def _ip(s: str) -> str | None:
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return None


def _hashed(v: object, path: str, fn: Callable[[str], str | None], why: str,
            p: list[Problem], notices: list[Notice]) -> tuple[str, ...]:
    """Normalise one value or a list of them; an unusable one is dropped with a notice.

    The notice names the field and the reason but never the value: it is personal data.
    """
    if v is None:
        return ()
    if isinstance(v, str) and v.strip():  # the common case: one value
        h = fn(v)
        if h is None:
            notices.append(Notice(path, f"{why}; dropped", NoticeKind.DROPPED_VALUE))
            return ()
        return (h,)
    single = isinstance(v, str)
    items: list[object] = [v] if single else v if isinstance(v, list) else []
    if not single and not isinstance(v, list):
        p.append(Problem(path, f"must be a string or a list of strings, got {json_type(v)}"))
        return ()
    if len(items) > MAX_IDS_PER_KEY:
        p.append(Problem(path, f"has more than {MAX_IDS_PER_KEY} values"))
        return ()
    out: list[str] = []
    for i, item in enumerate(items):
        ipath = path if single else f"{path}.{i}"
        if is_blank(item):
            continue
        if not isinstance(item, str):
            p.append(Problem(ipath, f"must be a string, got {json_type(item)}"))
            continue
        h = fn(item)
        if h is None:
            notices.append(Notice(ipath, f"{why}; dropped", NoticeKind.DROPPED_VALUE))
        elif h not in out:
            out.append(h)
    return tuple(out)


def _att_status(v: object, p: list[Problem]) -> str | None:
    if is_blank(v):
        return None
    status = v.strip().upper() if isinstance(v, str) else None
    if status not in ATT_STATUSES:
        p.append(Problem("user.att_status", "must be one of " + ", ".join(ATT_STATUSES)))
        return None
    return status
