"""The trace's line about match keys, from a stored event body."""

from __future__ import annotations

from pixelrelay.diagnostics.match_keys import carries_match_key, match_key_note

INVALID_EMAIL = ["user.email", "not a valid email address; dropped", "dropped_value"]


def test_what_counts_as_a_match_key() -> None:
    assert not carries_match_key({})
    assert not carries_match_key({"ip": "203.0.113.9", "locale": "de-DE"})  # IP alone
    assert carries_match_key({"ip": "203.0.113.9", "user_agent": "Mozilla/5.0"})
    assert carries_match_key({"fbp": "fb.1.1.2"})  # any destination's click or browser id
    assert carries_match_key({"email": ["ab" * 32]})
    assert not carries_match_key({"email": []})


def test_the_note_names_the_dropped_fields_or_why_there_are_none() -> None:
    assert match_key_note({"user": {"email": ["h"]}, "warnings": []}, sent=True) is None
    assert match_key_note({"user": {}, "warnings": [INVALID_EMAIL]}, sent=True) == (
        "Sent without match keys: email dropped: not a valid email address. The platform "
        "cannot attribute it to a person or a click.")
    assert match_key_note({"user": {}, "warnings": [INVALID_EMAIL]}, sent=False).startswith(
        "No match keys: email dropped")
    denied = {"user": {}, "consent": {"ad_user_data": "denied"}}
    assert "removed for consent (ad_user_data denied)" in str(match_key_note(denied, True))
    assert "none was given" in str(match_key_note({"user": {}}, sent=True))
    # A phone kept unverified is no dropped key; an older body's plain-string warning is skipped.
    kept = {"user": {"phone": ["h"]}, "warnings": [
        ["user.phone", "new numbering", "unverified"], "user.x: old"]}
    assert match_key_note(kept, sent=True) is None
    assert match_key_note({"user": {"phone": ["h"]}, "warnings": [INVALID_EMAIL]},
                          sent=True) == ("Match keys dropped at ingest: email dropped: not a "
                                         "valid email address.")
