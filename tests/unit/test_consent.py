"""Consent: regions that require it, PII removal on ad_user_data denied, suppression."""

from __future__ import annotations

import pytest

from pixelrelay.model import Consent, ConsentState, Event, User
from pixelrelay.pipeline.consent import (
    EEA,
    EU,
    apply_consent,
    expand_regions,
    suppression_reason,
    with_region,
)

G, D = ConsentState.GRANTED, ConsentState.DENIED
H = "a" * 64
USER = User(email=(H,), phone=(H,), external_id=(H,), ip="203.0.113.1",
            click_ids=(("ttclid", "E.C.P.x"),))


def event(consent: Consent) -> Event:
    return Event(name="Purchase", event_id="e1", event_time=1, user=USER, consent=consent)


def test_region_aliases() -> None:
    extra = EEA - EU
    assert len(EU) == 27 and extra == {"IS", "LI", "NO"}
    assert expand_regions(frozenset({"eea", "GB", "CH"})) == EEA | {"GB", "CH"}
    assert expand_regions(frozenset({"EU"})) == EU
    assert "NO" not in expand_regions(frozenset({"EU"}))


@pytest.mark.parametrize("required", [frozenset({"DE"}), frozenset({"EU"}), frozenset({"EEA"})])
def test_missing_consent_in_a_required_region_is_denied(required: frozenset[str]) -> None:
    out = apply_consent(event(Consent(region="DE")), required)
    assert out.consent == Consent(D, D, D, "DE", basis="region")
    assert out.user == User(ip="203.0.113.1", click_ids=(("ttclid", "E.C.P.x"),))
    # Nobody said no: the reason says so, and which rule decided.
    assert suppression_reason(out) == (
        "consent: none given; region DE requires it ([consent] require_in_regions)")


def test_only_missing_states_become_denied() -> None:
    out = apply_consent(event(Consent(marketing=G, ad_user_data=G, region="NO")),
                        frozenset({"EEA"}))
    assert out.consent == Consent(G, G, D, "NO")
    assert out.user == USER
    assert suppression_reason(out) is None


@pytest.mark.parametrize("consent", [Consent(), Consent(region="US"), Consent(region="NO")])
def test_not_required_leaves_the_event_alone(consent: Consent) -> None:
    e = event(consent)
    assert apply_consent(e, frozenset({"EU", "GB"})) is e
    assert apply_consent(e, frozenset()) is e


def test_ad_user_data_denied_strips_hashed_ids_anywhere() -> None:
    out = apply_consent(event(Consent(ad_user_data=D)), frozenset())
    assert (out.user.email, out.user.phone, out.user.external_id) == ((), (), ())
    assert out.user.click_id("ttclid") == "E.C.P.x"  # not personal data in the ad_user_data sense
    assert suppression_reason(out) is None


def test_marketing_denied_suppresses() -> None:
    assert suppression_reason(event(Consent(marketing=D))) == "consent: marketing denied"
    assert suppression_reason(event(Consent(marketing=G))) is None


def test_ad_user_data_denied_removes_every_personal_key() -> None:
    full = User(email=(H,), phone=(H,), external_id=(H,), first_name=H, last_name=H, zip_code=H,
                city="berlin", state="be", country="de", idfa=H, gaid=H, idfv="v", ip="203.0.113.1",
                user_agent="UA", locale="de-DE", att_status="DENIED",
                click_ids=(("ttclid", "E.C.P.x"), ("ttp", "2.t")))
    e = Event(name="Purchase", event_id="e1", event_time=1, user=full,
              consent=Consent(marketing=G, ad_user_data=D))
    out = apply_consent(e, frozenset())
    assert out.user == User(ip="203.0.113.1", user_agent="UA", locale="de-DE", att_status="DENIED",
                            click_ids=(("ttclid", "E.C.P.x"), ("ttp", "2.t")))


def test_an_event_without_a_region_takes_its_users_two_letter_country() -> None:
    e = Event(name="Purchase", event_id="e1", event_time=1, user=User(country="de"))
    assert with_region(e).consent.region == "DE"
    # ... and then counts as from a region that requires consent
    assert suppression_reason(apply_consent(with_region(e), frozenset({"EEA"}))) == (
        "consent: none given; region DE requires it ([consent] require_in_regions)")
    own = Event(name="Purchase", event_id="e1", event_time=1, user=User(country="de"),
                consent=Consent(region="US"))
    assert with_region(own) is own
    named = Event(name="Purchase", event_id="e1", event_time=1, user=User(country="germany"))
    assert with_region(named) is named
