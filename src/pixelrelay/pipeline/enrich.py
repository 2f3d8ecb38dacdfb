"""Restore a browser session's context (ip, user agent, the click and browser ids the
destination types declare) and its consent onto events that lack them."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import field, replace
from enum import StrEnum
from typing import Any

from pixelrelay.model import Consent, Event, click_ids_of, declared_ids
from pixelrelay.pipeline.consent import BASIS_SESSION
from pixelrelay.records import record

TOKEN_KINDS = ("cart_token", "checkout_token")
MAX_TOKEN_LEN = 256


class EnrichedFrom(StrEnum):
    """How the context was found; stored as Event.enriched_from for the diagnostics."""

    SESSION = "session"  # the event named the session
    LINK = "link"  # a cart/checkout token linked to a session
    IDENTITY = "identity"  # a hashed email/external_id a server source stated with a session


@record
class SessionContext:
    """What a browser session told us about the visitor. Never holds raw personal data."""

    session_id: str
    ip: str | None = None
    user_agent: str | None = None
    landing_url: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    # The visitor's latest consent answer, when it was given and how ("explicit": the
    # site's pixelrelay('consent') call; "consent_mode": Google Consent Mode in dataLayer).
    consent: Consent | None = None
    consent_at: float | None = None
    consent_source: str | None = None
    # Click and browser ids by the user key they fill (model.IdKey), as the browser source
    # found them; stored as one JSON map, not a column each.
    click_ids: dict[str, str] = field(default_factory=dict, hash=False)


@record
class Lookup:
    """The keys an event offers for finding its session, strongest first."""

    session_id: str | None
    tokens: tuple[tuple[str, str], ...]  # (kind, token)
    identities: tuple[str, ...]  # "email:<hex>" / "external_id:<hex>": see identity_keys

    @property
    def empty(self) -> bool:
        return self.session_id is None and not self.tokens and not self.identities


def wants_lookup(event: Event, ids: Collection[str]) -> bool:
    """Whether a session could add anything: a match key or a consent the event lacks. `ids`:
    the click and browser ids the configured destinations send (one no destination takes is
    not worth a read)."""
    u = event.user
    return (u.ip is None or u.user_agent is None or event.consent.is_empty
            or any(u.click_id(key) is None for key in ids))


def take_consent(event: Event, context: SessionContext | None) -> Event:
    """An event that states no consent of its own takes its session's latest answer; the
    event's own region (e.g. an order's billing country) is kept when it has one."""
    if context is None or context.consent is None or not event.consent.is_empty:
        return event
    region = event.consent.region or context.consent.region
    return replace(event, consent=replace(context.consent, region=region, basis=BASIS_SESSION))


# The key of the identities' HMAC: fixed, as the links must outlive a restart; what it keeps
# apart is a session link from the digest a platform matches on, not a secret.
IDENTITY_KEY = b"pixelrelay/identity"


def identity(kind: str, digest: str) -> str:
    """A session identity: "<kind>:" and the HMAC-SHA256 (hex) of the stored digest of the
    normalised email or external_id, so that no destination's own match key is kept with a
    session."""
    return f"{kind}:{hmac.digest(IDENTITY_KEY, digest.encode(), 'sha256').hex()}"


def identity_keys(event: Event) -> tuple[str, ...]:
    """Identities are the event's email and external_id, keyed (phones are shared too often
    between household members to stand for one browser)."""
    return (*(identity("email", h) for h in event.user.email),
            *(identity("external_id", h) for h in event.user.external_id))


def token_keys(event: Event) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for kind in TOKEN_KINDS:
        value = event.properties.get(kind)
        if isinstance(value, str) and 0 < len(value.strip()) <= MAX_TOKEN_LEN:
            out.append((kind, value.strip()))
    return tuple(out)


_NO_LOOKUP = Lookup(None, (), ())


def lookup_for(event: Event) -> Lookup:
    return Lookup(event.session_id, token_keys(event), identity_keys(event))


def server_lookup_for(event: Event, wanted: bool) -> Lookup:
    """`lookup_for` of an event that came without its browser context. With no session id,
    no token and no key a session could add (not `wanted`: see wants_lookup; a backend that
    sends them all), nothing is looked up and nothing is linked, so its identities need not
    be spelled out."""
    tokens = token_keys(event)
    if event.session_id is None and not tokens and not wanted:
        return _NO_LOOKUP
    return Lookup(event.session_id, tokens, identity_keys(event))


def without_tokens(event: Event) -> Event:
    """The event as destinations get it: cart and checkout tokens have found the session,
    and they identify a shop's cart, which is no ad platform's business."""
    props = event.properties
    if "cart_token" not in props and "checkout_token" not in props:
        return event
    return replace(event, properties={k: v for k, v in props.items() if k not in TOKEN_KINDS})


def without_identities(lookup: Lookup) -> Lookup:
    """The lookup of a browser claim: its own session and cart tokens only. An identity a
    browser states is not proof of who it is, so it neither finds nor links a session."""
    if not lookup.identities:
        return lookup
    return Lookup(lookup.session_id, lookup.tokens, ())


def enrich(event: Event, context: SessionContext | None, how: EnrichedFrom) -> Event:
    """Fill each of ip, user_agent and the click and browser ids the event lacks from the
    context.

    The event's own values always win: a backend that knows the buyer's IP knows it better
    than a session seen earlier. `enriched_from` is set only when something was filled, so
    the diagnostics count events that really gained a match key.
    """
    if context is None:
        return event
    u = event.user
    # Only what is missing and known: a copy of the User costs some 6 µs, and events from
    # the tag lack nothing (they carry their context already).
    fills: dict[str, Any] = {key: known for key, own, known in (
        ("ip", u.ip, context.ip), ("user_agent", u.user_agent, context.user_agent))
        if own is None and known is not None}
    if context.click_ids:
        own_ids = dict(u.click_ids)
        declared = declared_ids()  # a key no destination type declares restores nothing
        ids = {k: v for k, v in context.click_ids.items()
               if k not in own_ids and k in declared}
        if ids:
            fills["click_ids"] = click_ids_of({**own_ids, **ids})
    if not fills:
        return event
    return replace(event, user=replace(u, **fills), enriched_from=str(how))


def merge_context(old: SessionContext | None, new: SessionContext) -> SessionContext:
    """A session after a new hit: newer non-empty match keys replace older ones (a new ad
    click brings a new click id), the landing URL and first_seen stay the first ones."""
    if old is None:
        return new
    return SessionContext(
        session_id=old.session_id,
        ip=new.ip or old.ip,
        user_agent=new.user_agent or old.user_agent,
        landing_url=old.landing_url or new.landing_url,
        first_seen=min(old.first_seen, new.first_seen) if old.first_seen else new.first_seen,
        last_seen=max(old.last_seen, new.last_seen),
        consent=new.consent or old.consent,
        consent_at=new.consent_at if new.consent is not None else old.consent_at,
        consent_source=new.consent_source if new.consent is not None else old.consent_source,
        click_ids={**old.click_ids, **new.click_ids} if new.click_ids else old.click_ids,
    )
