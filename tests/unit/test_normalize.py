"""Hashing of match keys: TikTok's published examples, pre-hashed pass-through, rejects."""

from __future__ import annotations

import hashlib

import pytest

from pixelrelay.pipeline.normalize import hash_email, hash_external_id, hash_phone, is_sha256_hex

ALICE = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
PHONE_US = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"
USER_123 = "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def test_tiktok_examples() -> None:
    assert hash_email(" ALICE_abc@gmail.com ") == ALICE
    assert hash_phone("(+1)2133734253", "") == PHONE_US
    assert hash_phone("(+1)2133734253", "DE") == PHONE_US  # the + wins over the region
    assert hash_external_id("user_123") == USER_123


def test_is_sha256_hex() -> None:
    assert is_sha256_hex(ALICE)
    assert is_sha256_hex(ALICE.upper())
    assert not is_sha256_hex(ALICE[:-1])
    assert not is_sha256_hex("g" * 64)


@pytest.mark.parametrize("fn", [hash_email, lambda s: hash_phone(s, "DE"), hash_external_id])
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
    assert hash_phone(raw, region) == sha("+491701234567")


@pytest.mark.parametrize(("raw", "region"), [
    ("0170 1234567", ""),  # national number and no region: the country is unknown
    ("12", "DE"),
    ("+1 555 0100", ""),  # possible length, but not a valid US number
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
