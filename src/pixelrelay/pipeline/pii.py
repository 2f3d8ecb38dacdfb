"""Keep raw personal data out of the free-form parts of an event (custom properties, page URL
query strings): an email address or phone number there is removed before anything is
stored, or, under a key that names it (properties.email), hashed into the right match key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import phonenumbers

from pixelrelay.errors import Notice, NoticeKind

_EMAIL = re.compile(r"[^\s@/?#&=:;,<>\"']+@[^\s@/?#&=:;,<>\"']+\.[A-Za-z]{2,}")
# +49 170 1234567, (030) 1234-5678, 0049.170.1234567: eight or more digits in phone dress.
_PHONE = re.compile(r"(?:\+|00)?\(?\d[\d\s().\-/]{6,22}\d")
_SEPARATED = re.compile(r"[\s().\-/]")
_EIGHT_DIGITS = re.compile(r"(?:\D*\d){8}")
# Dates, times and IPv4 addresses, which have the digits of a phone number but are not one.
_NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|"
                        r"\d{1,3}(?:\.\d{1,3}){3}|\d{1,2}:\d{2}(?::\d{2})?")
# Property keys that hold ids or amounts by TikTok's contract: digits there are not phones.
_ID_KEYS = frozenset({"order_id", "shop_id", "content_id", "content_ids", "value", "price",
                      "quantity", "num_items", "currency", "content_type", "event_id",
                      "cart_token", "checkout_token"})
# Keys that name a match key: their value is moved to user.<key>, hashed like one.
EMAIL_KEYS = frozenset({"email", "email_address", "customer_email", "user_email", "e_mail"})
PHONE_KEYS = frozenset({"phone", "phone_number", "telephone", "mobile", "customer_phone",
                        "user_phone", "tel"})
_MAX_DEPTH = 6
_SCRUBBED = (str, dict, list)  # the JSON values that can hold text


@dataclass(slots=True)
class Found:
    """Values taken out of free-form fields: raw, for the caller to hash (never to store)."""

    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


def looks_like_email(text: str) -> bool:
    return _EMAIL.search(text) is not None


def looks_like_phone(text: str, region: str = "") -> bool:
    """A run of 8 to 15 digits that phonenumbers takes for a possible number: written
    internationally (+ or 00), or with separators in the default region's national form. A
    bare digit run (an id, a date like 20250901) or a date, time or IP address is not."""
    for m in _PHONE.finditer(text):
        raw = m.group()
        digits = sum(c.isdigit() for c in raw)
        if not 8 <= digits <= 15 or _NOT_PHONE.fullmatch(raw.strip()):
            continue
        international = raw.startswith(("+", "00"))
        # A national-form number must be the whole value: inside text it is more often
        # part of an id (SKU-481-2231-99) than a phone.
        if not international and not (region and _SEPARATED.search(raw)
                                      and raw == text.strip()):
            continue
        number = "+" + raw[2:] if raw.startswith("00") else raw
        try:
            parsed = phonenumbers.parse(number, None if international else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            return True
    return False


def scrub_properties(props: dict[str, Any], found: Found, region: str = "") -> dict[str, Any]:
    """properties without personal data: named keys moved to `found`, other values that look
    like an email or a phone dropped with a notice (the key names the field, not the value)."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        low = str(key).lower()
        # Most values are ids, amounts or numbers: nothing in them to look at.
        if low in _ID_KEYS or not isinstance(value, _SCRUBBED):
            out[key] = value
            continue
        path = f"properties.{key}"
        is_email, is_phone = low in EMAIL_KEYS, low in PHONE_KEYS
        strings = _strings(value) if is_email or is_phone else []
        if strings:
            (found.emails if is_email else found.phones).extend(strings)
            found.notices.append(Notice(path, "moved to user." + (
                "email" if is_email else "phone") + " (hashed); not sent as a property",
                NoticeKind.DROPPED_VALUE))
            continue
        cleaned = _clean(value, path, found, 0, region)
        if cleaned is not _REMOVED:
            out[key] = cleaned
    return out


def scrub_values(obj: dict[str, Any], path: str, found: Found,
                 region: str = "") -> dict[str, Any]:
    """`obj` without values that look like an email or phone (keys are not read as names)."""
    cleaned = _clean(obj, path, found, 0, region)
    return cleaned if isinstance(cleaned, dict) else {}


def scrub_url(url: str | None, path: str, found: Found, region: str = "") -> str | None:
    """A page URL with every query parameter whose value (or name) is personal data removed;
    the path, the other parameters (ttclid, utm_*) and the fragment stay."""
    if not url or ("@" not in url and ("?" not in url or _EIGHT_DIGITS.search(url) is None)
                   and "%40" not in url):
        return url  # the common case: nothing there could be an email or a phone
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    kept = []
    for name, value in pairs:
        low = name.lower()
        # An unescaped "+" in a query string reads as a space: "+49..." arrives as " 49...".
        as_typed = "+" + value[1:] if value.startswith(" ") else value
        if (low in EMAIL_KEYS or low in PHONE_KEYS or looks_like_email(value)
                or looks_like_phone(as_typed, region)):
            found.notices.append(Notice(f"{path}?{name[:40]}", "personal data in the query "
                                        "string; parameter removed", NoticeKind.DROPPED_VALUE))
            continue
        kept.append((name, value))
    if len(kept) == len(pairs) and not looks_like_email(parts.path):
        return url
    clean_path = _EMAIL.sub("", parts.path) if looks_like_email(parts.path) else parts.path
    return urlunsplit((parts.scheme, parts.netloc, clean_path, urlencode(kept), parts.fragment))


class _Removed:
    pass


_REMOVED = _Removed()


def _clean(value: Any, path: str, found: Found, depth: int, region: str) -> Any:
    if isinstance(value, str):
        if looks_like_email(value) or looks_like_phone(value, region):
            found.notices.append(Notice(path, "looks like an email address or phone number; "
                                              "removed", NoticeKind.DROPPED_VALUE))
            return _REMOVED
        return value
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            cleaned = (v if k in _ID_KEYS or not isinstance(v, _SCRUBBED) else
                       _clean(v, f"{path}.{k}", found, depth + 1, region))
            if cleaned is not _REMOVED:
                out[k] = cleaned
        return out
    if isinstance(value, list):
        items = [v if not isinstance(v, _SCRUBBED) else
                 _clean(v, f"{path}.{i}", found, depth + 1, region)
                 for i, v in enumerate(value)]
        return [v for v in items if v is not _REMOVED]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []
