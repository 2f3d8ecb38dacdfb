"""`record` values behave as the frozen dataclasses they replace: equal by value, hashable by
value, copied with dataclasses.replace, slotted (no stray attributes)."""

from __future__ import annotations

import dataclasses

import pytest

from pixelrelay.model import Consent, ConsentState, Event, User


def test_equal_and_hashed_by_value() -> None:
    a = Consent(marketing=ConsentState.GRANTED, region="DE")
    b = Consent(marketing=ConsentState.GRANTED, region="DE")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, Consent()}) == 2


def test_replace_makes_a_new_value_and_leaves_the_old_one() -> None:
    user = User(email=("a" * 64,), click_ids=(("ttclid", "E.C.P.x"),))
    event = Event(name="Purchase", event_id="1", event_time=1, user=user)
    later = dataclasses.replace(event, user=user.with_click_ids({"ttclid": ""}))
    assert event.user.click_id("ttclid") == "E.C.P.x" and later.user.click_id("ttclid") is None
    assert later.user.email == user.email


def test_slotted() -> None:
    with pytest.raises(AttributeError):
        User().nickname = "x"  # type: ignore[attr-defined]
