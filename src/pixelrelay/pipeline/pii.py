"""The one scrubber of free-form text: keep raw personal data out of every part of an event
or a session that is stored or sent (custom properties and their keys at any depth, URLs'
query, fragment and path, user agents, free text). An email address or phone number there
is removed before anything is written, or, under a key that names it (properties.email),
hashed into the right match key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import phonenumbers

from pixelrelay.errors import Notice, NoticeKind

_EMAIL = re.compile(r"[^\s@/?#&=:;,<>\"']+@[^\s@/?#&=:;,<>\"']+\.[A-Za-z]{2,}")
# +49 170 1234567, (030) 1234-5678, 0049.170.1234567: eight or more digits in phone dress.
_PHONE = re.compile(r"(?:\+|00)?\(?\d[\d\s().\-/]{6,22}\d")
_SEPARATED = re.compile(r"[\s().\-/]")
_DROP_DIGITS = str.maketrans("", "", "0123456789")
# Where an internationally written number could start: "+49", "+ (49", "0049" (not the 00 of 2010).
_INTERNATIONAL = re.compile(r"\+\s?\(?\d|(?<![\d.])00\d")
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
# JSON nesting a request may have at most (TikTok's own objects are 3 deep); the HTTP layer
# refuses deeper bodies, and the scrubber drops anything deeper it is handed directly.
MAX_DEPTH = 32
_SCRUBBED = (str, dict, list)  # the JSON values that can hold text
# How a key that is personal data itself is named in notices, traces and logs.
PERSONAL_KEY = "(personal data)"
_KEY_REMOVED = "a key that is an email address or phone number; removed with its value"


@dataclass(slots=True)
class Found:
    """Values taken out of free-form fields: raw, for the caller to hash (never to store)."""

    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


def looks_like_email(text: str) -> bool:
    """An address, as typed or percent-encoded (`jane%40example.com` in a URL or a value
    copied from one)."""
    return _EMAIL.search(text) is not None or (
        "%" in text and _EMAIL.search(_unquoted(text)) is not None)


def looks_like_phone(text: str, region: str = "") -> bool:
    """A run of 8 to 15 digits that phonenumbers takes for a possible number: written
    internationally (+ or 00), or with separators in the default region's national form. A
    bare digit run (an id, a date like 20250901) or a date, time or IP address is not."""
    if "%" in text and _phone_in(_unquoted(text), region):
        return True
    return _phone_in(text, region)


def looks_personal(text: str, region: str = "") -> bool:
    """Whether `text` holds an email address or a phone number, in any of their dresses."""
    if "@" not in text and "%" not in text and not _eight_digits(text):
        return False  # most text: no address without an @, no phone under eight digits
    return looks_like_email(text) or looks_like_phone(text, region)


def _eight_digits(text: str) -> bool:
    """At least eight digits in all (a C-speed count: a regex for it backtracks)."""
    return len(text) - len(text.translate(_DROP_DIGITS)) >= 8


def safe_key(key: object, region: str = "") -> str:
    """A key as it may be named in a notice, a trace or a log: an email or phone used as
    a key (`{"jane@example.com": 1}`) is not repeated there."""
    text = str(key)[:100]
    return PERSONAL_KEY if _key_is_personal(text, region) else text


def scrub_text(text: str | None, path: str, found: Found, region: str = "") -> str | None:
    """Free text (a user agent, an app name) with any email address or internationally
    written phone number cut out; None when nothing else is left."""
    if not text or ("@" not in text and "%" not in text and (
            ("+" not in text and "00" not in text) or _INTERNATIONAL.search(text) is None)):
        return text  # no address without an @, no international number without + or 00
    if not looks_personal(text, region):
        return text
    cleaned = _unquoted(text) if "%" in text else text
    cleaned = _EMAIL.sub("", cleaned)
    for m in reversed(list(_PHONE.finditer(cleaned))):
        if _phone_in(m.group(), ""):
            cleaned = cleaned[:m.start()] + cleaned[m.end():]
    cleaned = " ".join(cleaned.split())
    found.notices.append(Notice(path, "held an email address or phone number; that part "
                                      "removed", NoticeKind.DROPPED_VALUE))
    return cleaned or None


def scrub_id(text: str | None, path: str, found: Found, region: str = "") -> str | None:
    """An id-like text field (a click id, a session id, a locale) that is an email address
    or phone number instead is dropped whole: there is nothing else in it to keep."""
    if text is None or not looks_personal(text, region):
        return text
    found.notices.append(Notice(path, "looks like an email address or phone number; removed",
                                NoticeKind.DROPPED_VALUE))
    return None


def _unquoted(text: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return unquote(text)


def _phone_in(text: str, region: str) -> bool:
    for m in _PHONE.finditer(text):
        raw = m.group()
        international = raw.startswith(("+", "00"))
        # A national-form number must be the whole value: inside text it is more often
        # part of an id (SKU-481-2231-99) than a phone.
        if not international and not (region and _SEPARATED.search(raw)
                                      and raw == text.strip()):
            continue
        digits = len(raw) - len(raw.translate(_DROP_DIGITS))
        if not 8 <= digits <= 15 or _NOT_PHONE.fullmatch(raw.strip()):
            continue
        number = "+" + raw[2:] if raw.startswith("00") else raw
        try:
            parsed = phonenumbers.parse(number, None if international else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            return True
    return False


def _bare_national(value: str, region: str) -> bool:
    """A URL part that is nothing but a national number as typed (`?ref=01701234567`):
    digits only, starting with the region's trunk prefix, and valid there. Without the
    prefix a digit run reads as an id (an order or product number), and is kept."""
    if not region or not value.isdigit() or not 8 <= len(value) <= 15:
        return False
    prefix = _trunk_prefix(region)
    if not prefix or not value.startswith(prefix):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return False


@lru_cache(maxsize=512)
def _trunk_prefix(region: str) -> str:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
    return (meta.national_prefix or "") if meta is not None else ""


def _url_part_personal(name: str, value: str, region: str) -> bool:
    low = name.lower()
    if low in EMAIL_KEYS or low in PHONE_KEYS or looks_personal(name, region):
        return True
    if "@" not in value and "%" not in value and not _eight_digits(value):
        return False
    # An unescaped "+" in a query string reads as a space: "+49..." arrives as " 49...".
    as_typed = "+" + value[1:] if value.startswith(" ") else value
    return (looks_like_email(value) or looks_like_phone(as_typed, region)
            or _bare_national(value.strip(), region))


def scrub_properties(props: dict[str, Any], found: Found, region: str = "") -> dict[str, Any]:
    """properties without personal data: named keys moved to `found`, other values that look
    like an email or a phone dropped with a notice (the key names the field, not the value),
    and so are keys that are personal data themselves."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        low = str(key).lower()
        # Most values are ids, amounts or numbers: nothing in them to look at.
        if low in _ID_KEYS:
            out[key] = value
            continue
        if _key_is_personal(key, region):
            found.notices.append(Notice("properties." + PERSONAL_KEY, _KEY_REMOVED,
                                        NoticeKind.DROPPED_VALUE))
            continue
        if not isinstance(value, _SCRUBBED):
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
    """`obj` without values (or keys) that look like an email or phone."""
    cleaned = _clean(obj, path, found, 0, region)
    return cleaned if isinstance(cleaned, dict) else {}


def scrub_url(url: str | None, path: str, found: Found, region: str = "") -> str | None:
    """A URL with every part that is personal data removed: query parameters and fragment
    parameters (by name or value, percent-encoded or not), a fragment that is one, and path
    segments that are one. The rest (click ids, utm_*, the page's own path) stays."""
    if not url or ("@" not in url and "%40" not in url and not _eight_digits(url)):
        return url  # the common case: nothing there could be an email or a phone
    if (url, region) in _CLEAN_URLS:
        return url
    try:
        parts = urlsplit(url)
        query = _kept_pairs(parts.query, f"{path}?", found, region)
        fragment = _kept_fragment(parts.fragment, f"{path}#", found, region)
    except ValueError:
        return None if looks_personal(url, region) else url
    segments = parts.path.split("/")
    kept_path = [s for s in segments if not (
        looks_personal(s, region) or (s.isdigit() and _bare_national(s, region)))]
    if len(kept_path) != len(segments):
        found.notices.append(Notice(f"{path}/", "personal data in the path; segment removed",
                                    NoticeKind.DROPPED_VALUE))
    if query is None and fragment is None and len(kept_path) == len(segments):
        _remember_clean(url, region)
        return url
    return urlunsplit((parts.scheme, parts.netloc, "/".join(kept_path),
                       parts.query if query is None else query,
                       parts.fragment if fragment is None else fragment))


# URLs found clean, by region: shops' pages repeat, and their product and variant ids are the
# long digit runs that make a URL worth a full look (10 µs). Only clean URLs are kept, so
# this holds no personal data; it is emptied when full, which bounds it.
_CLEAN_URLS: set[tuple[str, str]] = set()
MAX_CLEAN_URLS = 4096


def _remember_clean(url: str, region: str) -> None:
    if len(_CLEAN_URLS) >= MAX_CLEAN_URLS:
        _CLEAN_URLS.clear()
    _CLEAN_URLS.add((url, region))


def _kept_pairs(text: str, path: str, found: Found, region: str) -> str | None:
    """`text` (a query string) without its personal parameters, or None when all stay."""
    if not text:
        return None
    pairs = parse_qsl(text, keep_blank_values=True)
    kept = []
    for name, value in pairs:
        if _url_part_personal(name, value, region):
            found.notices.append(Notice(path + safe_key(name[:40], region), "personal data "
                                        "in the URL; parameter removed",
                                        NoticeKind.DROPPED_VALUE))
            continue
        kept.append((name, value))
    return None if len(kept) == len(pairs) else urlencode(kept)


def _kept_fragment(fragment: str, path: str, found: Found, region: str) -> str | None:
    """The fragment without personal data: as parameters (`#ref=jane@example.com`) when it
    has any, else whole; None when it stays as it is."""
    if not fragment:
        return None
    if "=" in fragment:
        kept = _kept_pairs(fragment, path, found, region)
        if kept is not None or not looks_personal(fragment, region):
            return kept
    if looks_personal(_unquoted(fragment), region) or _bare_national(fragment, region):
        found.notices.append(Notice(path, "personal data in the URL fragment; removed",
                                    NoticeKind.DROPPED_VALUE))
        return ""
    return None


class _Removed:
    pass


_REMOVED = _Removed()


def _key_is_personal(key: object, region: str) -> bool:
    text = str(key)
    # Keys are short names; only one with an @ or eight digits can be an address or number.
    return looks_personal(text, region)


def _clean(value: Any, path: str, found: Found, depth: int, region: str) -> Any:
    if isinstance(value, str):
        if looks_personal(value, region):
            found.notices.append(Notice(path, "looks like an email address or phone number; "
                                              "removed", NoticeKind.DROPPED_VALUE))
            return _REMOVED
        return value
    if depth >= MAX_DEPTH:
        # Deeper than any request may nest (the HTTP layer refuses it): not walked, not kept.
        found.notices.append(Notice(path, f"nested deeper than {MAX_DEPTH} levels; removed",
                                    NoticeKind.DROPPED_VALUE))
        return _REMOVED
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if _key_is_personal(k, region):
                found.notices.append(Notice(f"{path}.{PERSONAL_KEY}", _KEY_REMOVED,
                                            NoticeKind.DROPPED_VALUE))
                continue
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
