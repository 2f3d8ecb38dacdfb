"""Meta's user_data: normalise each customer-information key as Meta specifies, then SHA-256.

Input is the normalised plaintext view (email trimmed and lower-cased, phone in E.164 with
`+`, names, place, country alpha-2, external_id). Nothing here logs or keeps a value: notices
name the key and the reason, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from hashlib import sha256

from pixelrelay.destinations.meta.regions import ISO_COUNTRIES, US_STATES

_Normalizer = Callable[[str], str | None]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# The same loose shape the rest of pixelrelay accepts: one @, no spaces, a dot in the domain.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_MAX_EMAIL = 254
_MAX_FIELD = 256
_PHONE_NOISE = re.compile(r"[\s\-().]")
_INTERNATIONAL = re.compile(r"[1-9][0-9]{6,14}")  # E.164: a country code never starts with 0
_WHITESPACE = re.compile(r"\s+")
_US_ZIP = re.compile(r"([0-9]{5})(?:-?[0-9]{4})?")
_ZIP_PLUS_4 = re.compile(r"([0-9]{5})-[0-9]{4}")
_ZIP_NOISE = re.compile(r"[\s\-]+")
_DOB = re.compile(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})")
_GENDERS = {"f": "f", "female": "f", "m": "m", "male": "m"}

# Meta's user_data keys in the order they are emitted (stable bodies, readable traces).
HASHED_KEYS: tuple[str, ...] = (
    "em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id")


class PreHashFormat(StrEnum):
    """Whose normalisation a 64-hex value the sender gave was hashed after."""

    META = "meta"  # a Meta Conversions API sender: hashed Meta's way
    TIKTOK = "tiktok"  # a TikTok Events API sender: phone with `+`, names without spaces...
    UNKNOWN = "unknown"


# Keys where a digest is the same whichever format it came in: email (trim + lower-case for
# both) and external_id (trimmed, case kept, SHA-256, as the TikTok destination does). Other
# TikTok digests cannot be checked (a phone is SHA-256 of `+E.164` there, of the digits here;
# names lose their spaces there; ZIP+4 keeps its 9 digits there), so they are left out.
_PORTABLE_KEYS = frozenset({"em", "external_id"})


@dataclass(frozen=True, slots=True)
class MetaUserInput:
    """The plaintext view of one user, as handed over after consent; lives in memory only.

    Any value may instead be a SHA-256 digest (64 hex) the sender hashed itself; then
    `prehash_format` says whose rules it was hashed after.
    """

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()  # E.164 with `+`
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None  # f / m (female / male accepted)
    date_of_birth: str | None = None  # YYYYMMDD or YYYY-MM-DD
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    external_ids: tuple[str, ...] = ()
    prehash_format: PreHashFormat = PreHashFormat.UNKNOWN


@dataclass(frozen=True, slots=True)
class HashedUser:
    """Meta's hashed user_data keys (each a list: Meta takes arrays for all of them), and what
    was left out and why."""

    user_data: dict[str, list[str]]
    notices: tuple[str, ...] = ()


def sha256_hex(normalised: str) -> str:
    return sha256(normalised.encode("utf-8")).hexdigest()


def is_sha256_hex(s: str) -> bool:
    return len(s) == 64 and _HEX64.fullmatch(s) is not None


def _nfc_lower(raw: str) -> str:
    # NFC so that an accent typed as a combining mark hashes like the precomposed letter.
    return unicodedata.normalize("NFC", raw.strip().lower())


def _letters(s: str) -> str:
    """Only letters of any script (and their combining marks): no spaces, digits or
    punctuation."""
    return "".join(c for c in s if unicodedata.category(c)[0] in "LM")


def normalize_email(raw: str) -> str | None:
    """em: trimmed and lower-cased; None when it is not shaped like an address."""
    s = raw.strip().lower()
    if len(s) > _MAX_EMAIL or _EMAIL.fullmatch(s) is None:
        return None
    return s


def normalize_phone(e164: str) -> str | None:
    """ph: digits with the country code, without `+` or leading zeros (Meta's rule, the
    opposite of TikTok's). Only an international number (`+` or `00`) says its country code,
    so a national number is refused rather than hashed to a digest nobody matches."""
    s = _PHONE_NOISE.sub("", e164.strip())
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("00"):
        s = s[2:]
    else:
        return None
    return s if _INTERNATIONAL.fullmatch(s) else None


def normalize_name(raw: str) -> str | None:
    """fn / ln: lower-case UTF-8 without punctuation (Meta: "lowercase only with no
    punctuation"; `Valéry` keeps its accent); inner spaces kept, single."""
    s = _nfc_lower(raw)
    s = "".join(c for c in s if unicodedata.category(c)[0] not in "PS")
    s = _WHITESPACE.sub(" ", s).strip()
    return s if s and len(s) <= _MAX_FIELD else None


def normalize_city(raw: str) -> str | None:
    """ct: lower-case letters only, no spaces or punctuation (`Menlo Park` -> `menlopark`)."""
    s = _letters(_nfc_lower(raw))
    return s if s and len(s) <= _MAX_FIELD else None


def normalize_state(raw: str, country: str | None = None) -> str | None:
    """st: a US state as its two-letter code in lower case (a full name is mapped to it);
    elsewhere lower-case letters without punctuation or spaces."""
    s = _letters(_nfc_lower(raw))
    if not s or len(s) > _MAX_FIELD:
        return None
    if country in (None, "us"):
        return US_STATES.get(s, s)
    return s


def normalize_zip(raw: str, country: str | None = None) -> str | None:
    """zp: lower-case without spaces or dashes; a US ZIP (or ZIP+4) as its first 5 digits.

    Without a country a `NNNNN-NNNN` value is taken as a US ZIP+4: no other country writes
    its codes that way."""
    s = _WHITESPACE.sub("", raw).lower()
    if country == "us":
        m = _US_ZIP.fullmatch(s)
        if m is not None:
            return m.group(1)
    elif country is None and (m := _ZIP_PLUS_4.fullmatch(s)) is not None:
        return m.group(1)
    s = _ZIP_NOISE.sub("", s)
    return s if s and len(s) <= _MAX_FIELD else None


def normalize_country(raw: str) -> str | None:
    """country: ISO 3166-1 alpha-2 in lower case (`US` -> `us`); None for anything else."""
    s = raw.strip().lower()
    return s if s in ISO_COUNTRIES else None


def normalize_gender(raw: str) -> str | None:
    """ge: `f` or `m`."""
    return _GENDERS.get(raw.strip().lower())


def normalize_date_of_birth(raw: str) -> str | None:
    """db: `YYYYMMDD` of a real calendar date."""
    m = _DOB.fullmatch(raw.strip())
    if m is None:
        return None
    try:
        date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return m.group(1) + m.group(2) + m.group(3)


def normalize_external_id(raw: str) -> str | None:
    """external_id: trimmed, case kept (ids are case-sensitive). Meta recommends hashing it;
    hashed the same way as for TikTok, so one digest serves both browser Pixels."""
    s = raw.strip()
    return s if s and len(s) <= _MAX_FIELD else None


_WHAT = {"em": "an email address", "ph": "an international phone number (+ and country code)",
         "fn": "a first name", "ln": "a last name", "ge": "f or m",
         "db": "a date of birth (YYYYMMDD)", "ct": "a city", "st": "a state",
         "zp": "a postal code", "country": "an ISO 3166-1 alpha-2 country code",
         "external_id": "an id"}


def prehash_notice(key: str, fmt: PreHashFormat) -> str:
    if key == "ph" and fmt is PreHashFormat.TIKTOK:
        return ("ph: a phone hashed in TikTok's format (SHA-256 of +E.164) cannot match "
                "Meta's (digits without +); left out")
    return f"{key}: a value hashed in {fmt.value} format cannot be checked against Meta's " \
           "normalisation; left out"


class _Builder:
    __slots__ = ("fmt", "notices", "out")

    def __init__(self, fmt: PreHashFormat) -> None:
        self.fmt = fmt
        self.out: dict[str, list[str]] = {}
        self.notices: list[str] = []

    def add(self, key: str, raw: str | None, normalized: str | None) -> None:
        if raw is None or not raw.strip():
            return  # never hash an empty string: sha256("") is a digest that matches nobody
        stripped = raw.strip()
        if is_sha256_hex(stripped):
            if self.fmt is PreHashFormat.META or key in _PORTABLE_KEYS:
                self._put(key, stripped.lower())
            else:
                self.notices.append(prehash_notice(key, self.fmt))
            return
        if normalized is None:
            self.notices.append(f"{key}: not {_WHAT[key]}; left out")
            return
        self._put(key, sha256_hex(normalized))

    def _put(self, key: str, digest: str) -> None:
        values = self.out.setdefault(key, [])
        if digest not in values:  # order kept: the first value is the primary one
            values.append(digest)


def hash_user(user: MetaUserInput) -> HashedUser:
    """Meta's hashed user_data keys from the plaintext view: every value normalised and
    SHA-256'd, pre-hashed values kept where their format is Meta's, the rest left out with a
    notice. client_ip_address, client_user_agent, fbc and fbp are added unhashed by the
    payload (see payload.user_data)."""
    b = _Builder(user.prehash_format)
    country = normalize_country(user.country) if user.country else None
    _each(b, "em", user.emails, normalize_email)
    _each(b, "ph", user.phones, normalize_phone)
    _one(b, "fn", user.first_name, normalize_name)
    _one(b, "ln", user.last_name, normalize_name)
    _one(b, "ge", user.gender, normalize_gender)
    _one(b, "db", user.date_of_birth, normalize_date_of_birth)
    _one(b, "ct", user.city, normalize_city)
    if user.state is not None:
        b.add("st", user.state, normalize_state(user.state, country))
    if user.zip is not None:
        b.add("zp", user.zip, normalize_zip(user.zip, country))
    _one(b, "country", user.country, normalize_country)
    _each(b, "external_id", user.external_ids, normalize_external_id)
    ordered = {k: b.out[k] for k in HASHED_KEYS if k in b.out}
    return HashedUser(ordered, tuple(b.notices))


def _one(b: _Builder, key: str, raw: str | None, norm: _Normalizer) -> None:
    if raw is not None:
        b.add(key, raw, norm(raw))


def _each(b: _Builder, key: str, raws: Iterable[str], norm: _Normalizer) -> None:
    for raw in raws:
        b.add(key, raw, norm(raw))
