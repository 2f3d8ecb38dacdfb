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
    phone_why = (f"not a valid phone number for region {region}" if region else
                 "not a valid phone number (give it as +<country code>..., or set "
                 "default_phone_region)")
    ip = opt_str(v.get("ip"), "user.ip", 64, p)
    if ip is not None:
        ip = _ip(ip)
        if ip is None:
            p.append(Problem("user.ip", "is not a valid IPv4 or IPv6 address"))

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

    return User(
        email=_hashed(v.get("email"), "user.email", hash_email, "not a valid email address",
                      p, notices),
        phone=_hashed(v.get("phone"), "user.phone", phone, phone_why, p, notices),
        external_id=_hashed(v.get("external_id"), "user.external_id", hash_external_id,
                            "empty", p, notices),
        ttclid=opt_str(v.get("ttclid"), "user.ttclid", 512, p),
        ttp=opt_str(v.get("ttp"), "user.ttp", 512, p),
        ip=ip,
        user_agent=opt_str(v.get("user_agent"), "user.user_agent", 1024, p, truncate=True),
        locale=opt_str(v.get("locale"), "user.locale", 35, p),
        first_name=_one(v, "first_name", hash_name, p, notices),
        last_name=_one(v, "last_name", hash_name, p, notices),
        zip_code=_one(v, "zip_code", hash_zip, p, notices),
        city=_one(v, "city", normalise_place, p, notices),
        state=_one(v, "state", normalise_place, p, notices),
        country=_one(v, "country", normalise_place, p, notices),
        idfa=_one(v, "idfa", hash_idfa, p, notices),
        idfv=opt_str(v.get("idfv"), "user.idfv", 64, p),
        gaid=_one(v, "gaid", hash_gaid, p, notices),
        att_status=_att_status(v.get("att_status"), p),
    )


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


def _one(v: dict[str, object], key: str, fn: Callable[[str], str | None], p: list[Problem],
         notices: list[Notice]) -> str | None:
    """A single-valued key; a list is taken by its first usable value (senders differ)."""
    found = _hashed(v.get(key), f"user.{key}", fn, "not usable", p, notices)
    return found[0] if found else None


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
