"""Normalise and SHA-256 hash the match keys (email, phone, external_id) as TikTok specifies."""

from __future__ import annotations

import re
from functools import lru_cache
from hashlib import sha256

import phonenumbers

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# Deliberately loose: one @, no spaces, a dot in the domain. Stricter checks reject real
# addresses, and TikTok only needs a stable hash of what the customer typed.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_MAX_EMAIL = 254
_MAX_PHONE = 64  # E.164 has at most 15 digits; leave room for spaces and punctuation
_E164 = phonenumbers.PhoneNumberFormat.E164


def is_sha256_hex(s: str) -> bool:
    return len(s) == 64 and _HEX64.fullmatch(s) is not None


def hash_email(raw: str) -> str | None:
    """Trim, lower-case, check the shape, SHA-256; a pre-hashed value passes lower-cased."""
    s = raw.strip().lower()
    if is_sha256_hex(s):
        return s
    if len(s) > _MAX_EMAIL or _EMAIL.fullmatch(s) is None:
        return None
    return sha256(s.encode()).hexdigest()


def hash_phone(raw: str, region: str) -> str | None:
    """E.164 with the `+` via phonenumbers, then SHA-256; pre-hashed passes; invalid -> None."""
    s = raw.strip()
    if is_sha256_hex(s):
        return s.lower()
    if len(s) > _MAX_PHONE:  # also keeps huge inputs out of the cache below
        return None
    return _hash_phone(s, region.upper())


# phonenumbers costs ~55 µs per number (parse + validity), more than the whole rest of an
# event; the same customer's phone recurs across checkout/purchase/retries, and a hit costs
# well under 1 µs. The cache lives in process memory only and is never persisted.
@lru_cache(maxsize=4096)
def _hash_phone(s: str, region: str) -> str | None:
    try:
        # A "+" number carries its country; a region would only mislead the parser.
        number = phonenumbers.parse(s, None if s.startswith("+") or not region else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return sha256(phonenumbers.format_number(number, _E164).encode()).hexdigest()


def hash_external_id(raw: str) -> str | None:
    """Trim and SHA-256 without lower-casing (ids are case-sensitive); pre-hashed passes."""
    s = raw.strip()
    if not s:
        return None
    if is_sha256_hex(s):
        return s.lower()
    return sha256(s.encode()).hexdigest()
