"""Phones written in international form (`+` and digits, with or without spaces, dots, dashes
and parentheses between them), checked without phonenumbers' parser.

phonenumbers costs 20-50 µs for each new number, most of it in the general parser (extension,
RFC 3966, IDD and alpha handling) and in checking the types one regex at a time. For `+` and
digits only, its decision reduces to: the country calling code prefix, the national prefix
stripping of the code's main region, then length and pattern checks against the metadata.
This module runs those same steps on phonenumbers' own metadata, compiled once per calling
code, so the answer is phonenumbers' answer (tests/unit/test_phone_fast_path.py compares the
two over millions of generated numbers). Whatever it cannot be sure of, it declines with
DECLINE and the caller asks phonenumbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata


class Declined(Enum):
    """Not decided here: ask phonenumbers (None keeps its meaning, an impossible number)."""

    DECLINE = "decline"


DECLINE = Declined.DECLINE

# `+` and 3-17 ASCII digits: phonenumbers needs 3 digits after a `+` to find a number at all,
# and 17 keeps every national number under its 17-digit cap so that check never decides.
_SHAPE = re.compile(r"\+[0-9]{3,17}")
# The same with the separators people and forms write between the digits (+49 170 123-4567,
# +1 (650) 555.0100): phonenumbers drops them before it reads the digits, so the answer is
# that of the digits alone. Anything else (letters, extensions, slashes) goes to phonenumbers.
_SEPARATED = re.compile(r"\+[0-9 ().\-]{3,48}")
_SEPARATORS = str.maketrans("", "", " ().-")
_MIN_NSN = 2  # phonenumbers' _MIN_LENGTH_FOR_NSN
_MAX_NSN = 17  # and _MAX_LENGTH_FOR_NSN (a transform rule could lengthen a number)

# phonenumbers' ValidationResult values, as _test_number_length answers them
_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE
_LOCAL_ONLY = phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY
_TOO_SHORT = phonenumbers.ValidationResult.TOO_SHORT
_TOO_LONG = phonenumbers.ValidationResult.TOO_LONG
_INVALID_LENGTH = phonenumbers.ValidationResult.INVALID_LENGTH


@dataclass(frozen=True, slots=True)
class _Desc:
    """A PhoneNumberDesc: its possible lengths (empty: any) and its compiled pattern."""

    lengths: frozenset[int]
    pattern: re.Pattern[str] | None

    def matches(self, nsn: str) -> bool:  # phonenumbers' _is_number_matching_desc
        if self.lengths and len(nsn) not in self.lengths:
            return False
        return self.pattern is not None and self.pattern.fullmatch(nsn) is not None

    def pattern_matches(self, nsn: str) -> bool:  # _match_national_number, lengths unchecked
        return self.pattern is not None and self.pattern.fullmatch(nsn) is not None


@dataclass(frozen=True, slots=True)
class _Region:
    """One region's metadata as validity needs it."""

    leading_digits: re.Pattern[str] | None
    general: _Desc
    types: tuple[_Desc, ...]  # premium ... voicemail, fixed line, then mobile if distinct
    # per national number length: the types that admit it, as one alternation (None: none do)
    by_length: dict[int, re.Pattern[str] | None]

    def valid(self, nsn: str) -> bool:
        """_number_type_helper(...) != UNKNOWN: the general description and any type's.

        A fullmatch of (?:a)|(?:b) succeeds exactly when one of a, b fullmatches, so one regex
        per length answers "any type" (the metadata patterns have no backreferences).
        """
        if not self.general.matches(nsn):
            return False
        n = len(nsn)
        try:
            combined = self.by_length[n]
        except KeyError:
            combined = self.by_length[n] = _alternation(self.types, n)
        return combined is not None and combined.fullmatch(nsn) is not None


def _alternation(types: tuple[_Desc, ...], n: int) -> re.Pattern[str] | None:
    admitted = [
        t.pattern.pattern
        for t in types
        if t.pattern is not None and (not t.lengths or n in t.lengths)
    ]
    return re.compile("|".join(f"(?:{p})" for p in admitted)) if admitted else None


@dataclass(frozen=True, slots=True)
class _Code:
    """A country calling code: its main region's parsing rules and every region's validity."""

    code: str
    general: _Desc
    lengths: tuple[int, ...]  # the main region's general possible lengths, sorted
    local_lengths: frozenset[int]
    prefix: re.Pattern[str] | None  # national_prefix_for_parsing
    transform: str | None  # national_prefix_transform_rule
    regions: tuple[_Region, ...]  # in phonenumbers' order; one region needs no leading digits

    def length_result(self, nsn: str) -> int:
        """_test_number_length(nsn, main metadata, UNKNOWN), for the general description."""
        n = len(nsn)
        if n in self.local_lengths:
            return int(_LOCAL_ONLY)
        if self.lengths[0] == n:
            return int(_POSSIBLE)
        if self.lengths[0] > n:
            return int(_TOO_SHORT)
        if self.lengths[-1] < n:
            return int(_TOO_LONG)
        return int(_POSSIBLE) if n in self.lengths[1:] else int(_INVALID_LENGTH)

    def strip_national_prefix(self, number: str) -> str:
        """_maybe_strip_national_prefix_carrier_code's number (the carrier code is unused)."""
        if self.prefix is None:
            return number
        m = self.prefix.match(number)
        if m is None:
            return number
        viable = self.general.pattern_matches(number)
        groups = m.groups()
        if not self.transform or groups[len(groups) - 1] is None:
            stripped = number[m.end() :]
            return number if viable and not self.general.pattern_matches(stripped) else stripped
        transformed = self.prefix.sub(self.transform, number, count=1)
        return number if viable and not self.general.pattern_matches(transformed) else transformed

    def check(self, national: str) -> tuple[str, bool] | None:
        if len(national) < _MIN_NSN:
            return None
        stripped = self.strip_national_prefix(national)
        # parse keeps the stripped form only when it is a possible (or too long) length
        if self.length_result(stripped) in (int(_POSSIBLE), int(_TOO_LONG)):
            national = stripped
        if not _MIN_NSN <= len(national) <= _MAX_NSN:
            return None
        if self._valid(national):
            return "+" + self.code + national, True
        n = len(national)  # is_possible_number_with_reason == IS_POSSIBLE
        if n not in self.local_lengths and n in self.lengths:
            return "+" + self.code + national, False
        return None

    def _valid(self, nsn: str) -> bool:
        """is_valid_number: the region region_code_for_number picks, then its types."""
        if len(self.regions) == 1:
            return self.regions[0].valid(nsn)
        for region in self.regions:
            if region.leading_digits is not None:
                if region.leading_digits.match(nsn) is not None:
                    return region.valid(nsn)
            elif region.valid(nsn):
                return True
        return False


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    # phonenumbers treats an empty pattern as matching nothing
    return re.compile(pattern) if pattern else None


def _desc(desc: Any) -> _Desc:
    return _Desc(frozenset(desc.possible_length), _compile(desc.national_number_pattern))


def _region(meta: Any) -> _Region:
    types = [
        meta.premium_rate,
        meta.toll_free,
        meta.shared_cost,
        meta.voip,
        meta.personal_number,
        meta.pager,
        meta.uan,
        meta.voicemail,
        meta.fixed_line,
    ]
    # _number_type_helper only tries mobile when its pattern differs from fixed line's
    if not meta.same_mobile_and_fixed_line_pattern:
        types.append(meta.mobile)
    return _Region(
        leading_digits=_compile(meta.leading_digits),
        general=_desc(meta.general_desc),
        types=tuple(_desc(d) for d in types if d is not None),
        by_length={},
    )


def _build(code: int) -> _Code | None:
    """Compile one calling code's metadata; None when it is not the shape this module knows."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions:
        return None
    metas = [PhoneMetadata.metadata_for_region_or_calling_code(code, r) for r in regions]
    main = metas[0]
    if main is None or main.general_desc is None or not main.general_desc.possible_length:
        return None
    compiled: list[_Region] = []
    for region, meta in zip(regions, metas, strict=True):
        if meta is None:  # phonenumbers skips a region without metadata
            continue
        if meta.country_code != code or meta.general_desc is None:
            return None  # is_valid_number_for_region would refuse it: leave it to phonenumbers
        if len(regions) > 1 and region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            return None
        compiled.append(_region(meta))
    prefix = main.national_prefix_for_parsing
    transform = main.national_prefix_transform_rule
    prefix_re = _compile(prefix)
    if transform and prefix_re is not None and prefix_re.groups == 0:
        return None  # phonenumbers would index an empty groups() tuple here
    return _Code(
        code=str(code),
        general=_desc(main.general_desc),
        lengths=tuple(sorted(main.general_desc.possible_length)),
        local_lengths=frozenset(main.general_desc.possible_length_local_only),
        prefix=prefix_re,
        transform=transform or None,
        regions=tuple(compiled),
    )


# Built on first use of each calling code (metadata loads lazily in phonenumbers too); a code
# that cannot be compiled is remembered as None and always declined.
_CODES: dict[int, _Code | None] = {}


def _code(code: int) -> _Code | None:
    try:
        return _CODES[code]
    except KeyError:
        built = _CODES[code] = _build(code)
        return built


def e164_fast(s: str) -> tuple[str, bool] | Declined | None:
    """(E.164, verified) or None exactly as phonenumbers would answer for `s`, or DECLINE.

    Only `+` and 3-17 ASCII digits are decided here, with spaces, dots, dashes and parentheses
    between them or not; everything else is DECLINE.
    """
    if _SHAPE.fullmatch(s) is None:
        if _SEPARATED.fullmatch(s) is None:
            return DECLINE
        s = "+" + s[1:].translate(_SEPARATORS)
        if _SHAPE.fullmatch(s) is None:
            return DECLINE
    digits = s[1:]
    if digits[0] == "0":
        return None  # no calling code starts with 0: phonenumbers cannot parse it
    # Calling codes are prefix-free, so the first known 1-3 digit prefix is the code.
    for n in (1, 2, 3):
        code = int(digits[:n])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            compiled = _code(code)
            return DECLINE if compiled is None else compiled.check(digits[n:])
    return None  # no known calling code
