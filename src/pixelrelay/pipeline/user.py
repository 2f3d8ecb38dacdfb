"""Validate an event's `user` object into a `User`: every match key TikTok documents, hashed
as TikTok specifies while it is read, so raw personal data never outlives this function."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any

from pixelrelay.errors import Notice, NoticeKind, Problem
from pixelrelay.model import PlainUser, User, click_ids_of, declared_ids
from pixelrelay.pipeline.normalize import (
    hash_email,
    hash_external_id,
    hash_gaid,
    hash_idfa,
    hash_name,
    hash_phone,
    hash_zip,
    is_sha256_hex,
    normalise_email,
    normalise_phone,
    normalise_place,
)
from pixelrelay.pipeline.pii import Found
from pixelrelay.pipeline.readers import is_blank, json_type, opt_str, unknown_keys

MAX_IDS_PER_KEY = 10  # email/phone/external_id values per event
# The user keys of every event; the click and browser ids the destination types declare
# (model.declared_ids) are user keys as well: see user_keys().
USER_KEYS = frozenset({
    "email", "phone", "external_id", "ip", "user_agent", "locale",
    "first_name", "last_name", "zip_code", "city", "state", "country",
    "idfa", "idfv", "gaid", "att_status",
})
ATT_STATUSES = ("AUTHORIZED", "DENIED", "NOT_DETERMINED", "RESTRICTED", "NOT_APPLICABLE")
_EMPTY = User()


def parse_user(v: object, region: str, p: list[Problem], notices: list[Notice],
               foreign_phone_hashes: bool = False) -> User:
    """`foreign_phone_hashes`: a pre-hashed phone is in the sender's platform's format, not
    the stored set's (SHA-256 of E.164 with +): left out of the User (Event.plain keeps it
    for that platform), with a notice."""
    if foreign_phone_hashes and isinstance(v, dict) and v.get("phone") is not None:
        v = _without_phone_digests(v, notices)
    if is_blank(v):
        return _EMPTY
    if not isinstance(v, dict):
        p.append(Problem("user", f"must be an object, got {json_type(v)}"))
        return _EMPTY
    declared = declared_ids()
    unknown_keys(v, "user.", user_keys(), notices)
    # Only the keys present are read: an event carries a handful of the 20.
    fields: dict[str, object] = {}
    ids: dict[str, str] = {}
    for key, value in v.items():
        if value is None:
            continue
        read = _READERS.get(key)
        if read is None:
            spec = declared.get(key)
            if spec is not None:
                given = opt_str(value, f"user.{key}", spec.max_len, p)
                if given is not None:
                    ids[key] = given
            continue
        got = read(value, region, p, notices)
        if got is not None and got != ():
            fields[key] = got
    if ids:
        fields["click_ids"] = click_ids_of(ids)
    return User(**fields) if fields else _EMPTY  # type: ignore[arg-type]


_KNOWN: dict[int, frozenset[str]] = {}  # by the number of declared ids (they only grow)


def user_keys() -> frozenset[str]:
    """Every key a `user` object may hold: the event's own and the declared ids'."""
    declared = declared_ids()
    known = _KNOWN.get(len(declared))
    if known is None:
        known = _KNOWN[len(declared)] = USER_KEYS | frozenset(declared)
    return known


def user_region(v: object, region: str) -> str:
    """The region national phone numbers of this user are read in: their own two-letter
    `country` where they give one, else `region` (the destination's default)."""
    if isinstance(v, dict):
        country = v.get("country")
        if isinstance(country, str) and len(c := country.strip()) == 2 and c.isalpha():
            return c.upper()
    return region


_PLAIN_LISTS = ("email", "phone", "external_id")
_PLAIN_TEXT = ("first_name", "last_name", "zip_code", "city", "state", "country")
PLAIN_KEYS = frozenset(_PLAIN_LISTS + _PLAIN_TEXT)


def plain_user(v: object, region: str, found: Found | None = None) -> PlainUser | None:
    """The personal keys of a (valid) `user` object, and those found in free-form fields, as
    normalised plaintext for the destinations to hash their own way; None when it has none.
    Unusable values are left out here as parse_user leaves them out of the User."""
    d = v if isinstance(v, dict) else {}
    if not (d.keys() & PLAIN_KEYS) and (found is None or not (found.emails or found.phones)):
        return None
    emails = [e for e in map(normalise_email, _texts(d.get("email"))) if e is not None]
    phones = [n for n in (normalise_phone(x, region) for x in _texts(d.get("phone")))
              if n is not None]
    if found is not None:
        emails += [e for e in map(normalise_email, found.emails) if e is not None]
        phones += [n for n in (normalise_phone(x, region) for x in found.phones)
                   if n is not None]
    ids = [x.strip() for x in _texts(d.get("external_id")) if x.strip()]
    text = {k: t.strip() for k in _PLAIN_TEXT
            if isinstance(t := d.get(k), str) and t.strip()}
    return PlainUser(email=tuple(dict.fromkeys(emails))[:MAX_IDS_PER_KEY],
                     phone=tuple(dict.fromkeys(phones))[:MAX_IDS_PER_KEY],
                     external_id=tuple(dict.fromkeys(ids))[:MAX_IDS_PER_KEY], **text)


def _texts(v: object) -> list[str]:
    if isinstance(v, str):
        return [v] if v.strip() else []
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str) and x.strip()]
    return []


def _without_phone_digests(v: dict[str, Any], notices: list[Notice]) -> dict[str, Any]:
    phones = v["phone"] if isinstance(v["phone"], list) else [v["phone"]]
    kept = [x for x in phones if not (isinstance(x, str) and is_sha256_hex(x.strip()))]
    if len(kept) == len(phones):
        return v
    notices.append(Notice("user.phone", "hashed in the sender's platform format (digits "
                                        "without +): sent to that platform only, left out "
                                        "for the others, which could not match it",
                          NoticeKind.DROPPED_VALUE))
    return {**v, "phone": kept}


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
