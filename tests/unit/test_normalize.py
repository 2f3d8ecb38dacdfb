"""Hashing of match keys: TikTok's published examples, pre-hashed pass-through, rejects."""

from __future__ import annotations

import hashlib

import pytest

from pixelrelay.pipeline.normalize import (
    hash_email,
    hash_external_id,
    hash_gaid,
    hash_idfa,
    hash_name,
    hash_phone,
    hash_zip,
    is_sha256_hex,
    normalise_place,
)

ALICE = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
PHONE_US = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"
USER_123 = "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def test_tiktok_examples() -> None:
    assert hash_email(" ALICE_abc@gmail.com ") == ALICE
    assert hash_phone("(+1)2133734253", "") == (PHONE_US, True)
    assert hash_phone("(+1)2133734253", "DE") == (PHONE_US, True)  # the + wins over the region
    assert hash_external_id("user_123") == USER_123


def test_is_sha256_hex() -> None:
    assert is_sha256_hex(ALICE)
    assert is_sha256_hex(ALICE.upper())
    assert not is_sha256_hex(ALICE[:-1])
    assert not is_sha256_hex("g" * 64)


@pytest.mark.parametrize("fn", [hash_email, lambda s: (hash_phone(s, "DE") or ("",))[0],
                                hash_external_id, hash_name, hash_zip, hash_idfa, hash_gaid])
def test_prehashed_values_pass_lower_cased(fn: object) -> None:
    assert callable(fn)
    assert fn(" " + ALICE.upper() + " ") == ALICE


@pytest.mark.parametrize("raw", ["", "   ", "alice", "alice@", "@example.com", "a b@example.com",
                                 "alice@example", "a@@example.com", "x" * 250 + "@example.com"])
def test_invalid_email_is_none(raw: str) -> None:
    assert hash_email(raw) is None


def test_email_is_trimmed_and_lower_cased() -> None:
    assert hash_email("Customer@Example.COM\n") == sha("customer@example.com")


@pytest.mark.parametrize(("raw", "region"), [
    ("+49 170 1234567", ""),
    ("+49 (0)170 1234567", ""),
    ("0170 1234567", "DE"),
    ("0170 1234567", "de"),
    ("0049 170 1234567", "DE"),
    ("+491701234567", "US"),
])
def test_phone_formats_converge_on_e164_with_plus(raw: str, region: str) -> None:
    assert hash_phone(raw, region) == (sha("+491701234567"), True)


def test_a_possible_but_unconfirmed_number_is_hashed_and_flagged() -> None:
    # +1 555 123 4567: ten digits as a US number needs, in a range no carrier has (555), so
    # phonenumbers says "possible" but not "valid" -- as it does for a range opened after
    # its metadata was released.
    assert hash_phone("+1 555 123 4567", "") == (sha("+15551234567"), False)


@pytest.mark.parametrize(("raw", "region"), [
    ("0170 1234567", ""),  # national number and no region: the country is unknown
    ("12", "DE"),
    ("+1 555 0100", ""),  # seven digits: local only, no area code, not E.164
    ("+49 1", ""),
    ("not a phone", "DE"),
    ("", "DE"),
])
def test_invalid_phone_is_none(raw: str, region: str) -> None:
    assert hash_phone(raw, region) is None


def test_external_id_keeps_case_and_trims() -> None:
    assert hash_external_id(" Cust_1 ") == sha("Cust_1")
    assert hash_external_id("Cust_1") != hash_external_id("cust_1")
    assert hash_external_id("   ") is None


def test_overlong_phone_is_refused_before_parsing() -> None:
    assert hash_phone("+49" + " " * 60 + "1701234567", "DE") is None


def test_names_are_trimmed_lower_cased_and_without_whitespace() -> None:
    assert hash_name("  Anne Marie ") == sha("annemarie")
    assert hash_name("ANNE\tMARIE") == sha("annemarie")
    assert hash_name("   ") is None


def test_zip_codes_lose_spaces_and_dashes() -> None:
    assert hash_zip(" SW1A 1AA ") == sha("sw1a1aa")
    assert hash_zip("12345-6789") == sha("123456789")
    assert hash_zip(" - ") is None


def test_places_are_normalised_never_hashed() -> None:
    assert normalise_place(" New York ") == "newyork"
    assert normalise_place("Rhode-Island") == "rhodeisland"
    assert normalise_place("US") == "us"
    assert normalise_place("...") is None
    assert normalise_place(ALICE) is None  # a hashed city is useless to TikTok


def test_advertising_ids() -> None:
    idfa = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert hash_idfa(idfa) == sha(idfa.upper())
    assert hash_gaid(" 38400000-8CF0-11BD-B23E-10B96E40000D ") == sha(
        "38400000-8cf0-11bd-b23e-10b96e40000d")
