"""Apply consent before anything is stored for delivery: deny by region, strip PII, suppress."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from pixelrelay.model import Consent, ConsentState, Event

EU = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
EEA = EU | {"IS", "LI", "NO"}
_GROUPS = {"EU": EU, "EEA": EEA}
_DENIED = ConsentState.DENIED
BASIS_REGION = "region"  # Consent.basis: filled in because the region requires consent
BASIS_ASSUMED = "assumed"  # Consent.basis: a source's `assume` stood in for an answer
BASIS_SESSION = "session"  # Consent.basis: the visitor's answer, restored from their session


@lru_cache(maxsize=32)
def expand_regions(regions: frozenset[str]) -> frozenset[str]:
    """Country codes named by the setting: the aliases EU and EEA become their members."""
    out: set[str] = set()
    for r in regions:
        r = r.strip().upper()
        out |= _GROUPS.get(r, {r})
    return frozenset(out)


def with_region(event: Event) -> Event:
    """An event that names no consent region takes its user's country when that is a
    two-letter code (an order's billing country, a CRM record's), so require_in_regions
    applies to it too."""
    country = event.user.country
    if event.consent.region is not None or country is None or len(country) != 2:
        return event
    return dataclasses.replace(
        event, consent=dataclasses.replace(event.consent, region=country.upper()))


def apply_consent(event: Event, require_in_regions: frozenset[str]) -> Event:
    """Missing consent counts as denied where the region requires it; ad_user_data denied
    removes every identifier of the person (hashed email, phone, external_id, names, zip,
    address, advertising ids); click and browser context stay."""
    c = event.consent
    if c.region and c.region in expand_regions(require_in_regions) and (
            c.marketing is None or c.ad_user_data is None or c.ad_personalization is None):
        c = Consent(marketing=c.marketing or _DENIED, ad_user_data=c.ad_user_data or _DENIED,
                    ad_personalization=c.ad_personalization or _DENIED, region=c.region,
                    basis=c.basis if c.marketing is not None else BASIS_REGION)
        event = dataclasses.replace(event, consent=c)
    if c.ad_user_data is _DENIED and (event.user.has_personal_data or event.plain is not None
                                      or event.hashed_users):
        event = dataclasses.replace(event, user=event.user.without_personal_data(), plain=None,
                                    hashed_users={})
    return event


def suppression_reason(event: Event) -> str | None:
    """Why the event must not be forwarded at all (it is kept, marked suppressed): "denied"
    only when someone said no."""
    c = event.consent
    if c.marketing is not _DENIED:
        return None
    if c.basis == BASIS_REGION:
        return (f"consent: none given; region {c.region} requires it "
                "([consent] require_in_regions)")
    if c.basis == BASIS_ASSUMED:
        return "consent: none given; assumed denied by the source's `assume`"
    return "consent: marketing denied"
