"""The E.164 fast path gives phonenumbers' answer for every `+`-and-digits number.

The property test runs PIXELRELAY_PHONE_EXAMPLES generated numbers (3,000 by default so the
suite stays quick; set it to millions for a full run): every calling code phonenumbers knows,
national numbers of 1-15 digits, with and without a national prefix written after the code,
and phonenumbers' example numbers with a digit changed, added or removed.
"""

from __future__ import annotations

import os

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelrelay.pipeline.e164 import DECLINE, e164_fast
from pixelrelay.pipeline.normalize import hash_phone, normalise_phone

_EXAMPLES = int(os.environ.get("PIXELRELAY_PHONE_EXAMPLES", "3000"))
_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def reference(s: str) -> tuple[str, bool] | None:
    """What pixelrelay answered before the fast path: phonenumbers' parse and checks."""
    try:
        number = phonenumbers.parse(s, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == phonenumbers.ValidationResult.IS_POSSIBLE:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), False
    return None


def _example_numbers() -> list[str]:
    found: set[str] = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


def _national_prefixes() -> list[str]:
    """Every national prefix the metadata names, and the usual ones besides."""
    found = {"", "0", "00", "1", "8", "9", "15", "06", "0549", "90", "01"}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            if meta is not None and meta.national_prefix:
                found.add(meta.national_prefix)
    return sorted(found)


EXAMPLES = _example_numbers()
PREFIXES = _national_prefixes()


def _neighbours(s: str) -> list[str]:
    """The number, its last digit ±1, one digit more and one digit less."""
    last = int(s[-1])
    return [
        s,
        s[:-1] + str((last + 1) % 10),
        s[:-1] + str((last - 1) % 10),
        s + "0",
        s + "7",
        s[:-1],
    ]


def _assert_same(s: str) -> None:
    fast = e164_fast(s)
    assert fast is not DECLINE, s  # every calling code compiles: `+` and 3-17 digits is decided
    assert fast == reference(s), s


def test_every_example_number_and_its_neighbours() -> None:
    assert len(EXAMPLES) > 1000  # every region and type, the non-geographic codes too
    for example in EXAMPLES:
        for s in _neighbours(example):
            _assert_same(s)


def test_every_calling_code_with_every_national_prefix() -> None:
    for code in _CODES:
        for prefix in PREFIXES:
            for n in range(4, 15):
                s = f"+{code}{prefix}{'2345678901234'[: n - 1]}9"
                if len(s) - 1 <= 17:
                    _assert_same(s)
                else:
                    assert e164_fast(s) is DECLINE


def _example_variant() -> st.SearchStrategy[str]:
    def mutate(example: str, prefix: str, at: int, digit: str, how: int) -> str:
        code = str(phonenumbers.parse(example).country_code)
        national = example[1 + len(code) :]
        if how == 0:  # a national prefix written after the code (+49 0170...)
            national = prefix + national
        elif how == 1:
            at %= len(national)
            national = national[:at] + digit + national[at + 1 :]
        elif how == 2:
            at %= len(national) + 1
            national = national[:at] + digit + national[at:]
        return f"+{code}{national}"

    return st.builds(
        mutate,
        st.sampled_from(EXAMPLES),
        st.sampled_from(PREFIXES),
        st.integers(0, 20),
        st.sampled_from("0123456789"),
        st.integers(0, 3),
    )


def _generated() -> st.SearchStrategy[str]:
    return st.builds(
        lambda code, prefix, national: f"+{code}{prefix}{national}",
        st.sampled_from(_CODES),
        st.sampled_from(PREFIXES),
        st.text("0123456789", min_size=1, max_size=15),
    )


def _separated(numbers: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A number as people and forms write it: separators between (and around) its digits."""
    separators = st.sampled_from(["", "", "", " ", "-", ".", "(", ")", " (", ") ", "  ", "-("])

    def write(number: str, seps: list[str]) -> str:
        out = ["+", seps[0]]
        for i, digit in enumerate(number[1:]):
            out += [digit, seps[(i + 1) % len(seps)]]
        return "".join(out)

    return st.builds(write, numbers, st.lists(separators, min_size=1, max_size=18))


@settings(
    max_examples=_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(_generated(), _example_variant()))
def test_fast_path_equals_phonenumbers(s: str) -> None:
    fast = e164_fast(s)
    if 3 <= len(s) - 1 <= 17:
        assert fast is not DECLINE
    if fast is not DECLINE:
        assert fast == reference(s)


@settings(
    max_examples=_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_separated(st.one_of(_generated(), _example_variant())))
def test_with_separators_the_fast_path_equals_phonenumbers(s: str) -> None:
    fast = e164_fast(s)
    if fast is not DECLINE:
        assert fast == reference(s), s


# (input, the answer phonenumbers gives and the fast path must give)
TRICKY = [
    ("+491701234567", ("+491701234567", True)),
    ("+4901701234567", ("+491701234567", True)),  # +49 0170...: the 0 is stripped
    ("+390612345678", ("+390612345678", True)),  # Italian leading zero kept
    ("+39612345678", ("+39612345678", False)),  # possible length, no Italian range
    ("+379066981234", None),  # Vatican is reached through +39 06698
    ("+12133734253", ("+12133734253", True)),
    ("+16135550123", ("+16135550123", True)),  # Canada, behind NANP's main region US
    ("+12423570000", ("+12423570000", True)),  # Bahamas, by leading digits 242
    ("+1242357000", None),  # one digit short
    ("+79123456789", ("+79123456789", True)),  # RU
    ("+77012345678", ("+77012345678", True)),  # KZ shares +7
    ("+447400123456", ("+447400123456", True)),
    ("+4407400123456", ("+447400123456", True)),  # +44 0: UK national prefix stripped
    ("+441481256789", ("+441481256789", True)),  # Guernsey
    ("+447624123456", ("+447624123456", True)),  # Isle of Man
    ("+447700900123", ("+447700900123", False)),  # Ofcom's drama range: possible, not valid
    ("+80012345678", ("+80012345678", True)),  # non-geographic codes
    ("+80812345678", ("+80812345678", True)),
    ("+870773111632", ("+870773111632", True)),
    ("+878101234567890", ("+878101234567890", True)),
    ("+8816123456789", ("+8816123456789", True)),
    ("+882345678901", ("+882345678901", False)),
    ("+883510012345", ("+883510012345", True)),
    ("+88812345678", None),
    ("+979123456789", ("+979123456789", True)),
    ("+540111512345678", ("+5491112345678", True)),  # Argentina: 0 and 15 out, 9 in
    ("+550211123456789", ("+551123456789", True)),  # Brazil: 0 and carrier code out
    ("+81012345678", ("+8112345678", False)),  # Japan: 0 out, possible only
    ("+378812345", ("+3780549812345", True)),  # San Marino: 0549 put in
    ("+67212345", ("+672312345", True)),  # Norfolk Island: 3 put in
    ("+0123456789", None),  # no calling code starts with 0
    ("+999123456789", None),  # unassigned code
    ("+123", None),
    ("+12345678901234567", None),
    ("+49 170 1234567", ("+491701234567", True)),  # as forms write them
    ("+49 (0) 170 123-4567", ("+491701234567", True)),
    ("+1 (213) 373.4253", ("+12133734253", True)),
]


@pytest.mark.parametrize(("raw", "expected"), TRICKY)
def test_tricky_cases(raw: str, expected: tuple[str, bool] | None) -> None:
    assert e164_fast(raw) == expected
    assert reference(raw) == expected
    assert normalise_phone(raw, "DE") == (None if expected is None else expected[0])


@pytest.mark.parametrize(
    "raw",
    [
        "+12",
        "+1 213 373 4253 ext. 12",  # an extension
        "+1 800 FLOWERS",  # letters
        "+49 170/1234567",  # a slash
        "+49 1 7 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5",  # more than 17 digits
        "+\uff12\uff11\uff13\uff13\uff17\uff13\uff14\uff12\uff15\uff13",  # full-width digits
        "+123456789012345678",
        "2133734253",
    ],
)
def test_other_shapes_go_to_phonenumbers(raw: str) -> None:
    assert e164_fast(raw) is DECLINE


def test_hash_phone_keeps_the_slow_path_for_other_shapes() -> None:
    assert normalise_phone("+1 (213) 373-4253", "") == "+12133734253"
    assert normalise_phone("(213) 373-4253", "US") == "+12133734253"
    fast = hash_phone("+12133734253", "")
    assert fast is not None
    assert fast == hash_phone("+1 213 373 4253", "")
