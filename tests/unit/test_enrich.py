"""Enrichment rules: what a session's context adds to an event, and which lookups it offers."""

from __future__ import annotations

import hashlib
import hmac

from pixelrelay.model import (
    Channel,
    Consent,
    ConsentState,
    Event,
    User,
    click_ids_of,
    declared_ids,
)
from pixelrelay.pipeline.copies import merge_copies
from pixelrelay.pipeline.enrich import (
    EnrichedFrom,
    SessionContext,
    enrich,
    identity,
    lookup_for,
    merge_context,
    take_consent,
    wants_lookup,
)

G, D = ConsentState.GRANTED, ConsentState.DENIED

H1, H2 = "a" * 64, "b" * 64
CTX = SessionContext("s_1", ip="203.0.113.1", user_agent="UA",
                     landing_url="https://shop.test/?ttclid=E.C.P.x", first_seen=10, last_seen=20,
                     click_ids={"ttclid": "E.C.P.x", "ttp": "2.t"})


def ev(**kw: object) -> Event:
    base: dict[str, object] = {"name": "Purchase", "event_id": "e", "event_time": 1}
    return Event(**{**base, **kw})  # type: ignore[arg-type]


def test_fills_only_what_is_missing_and_says_how() -> None:
    out = enrich(ev(user=User(ip="192.0.2.9")), CTX, EnrichedFrom.LINK)
    assert out.user == User(ip="192.0.2.9", user_agent="UA",
                            click_ids=(("ttclid", "E.C.P.x"), ("ttp", "2.t")))
    assert out.enriched_from == "link"


def test_nothing_to_add_leaves_the_event_unmarked() -> None:
    every_id = click_ids_of(dict.fromkeys(declared_ids(), "v"))
    full = ev(user=User(ip="192.0.2.9", user_agent="U", click_ids=every_id),
              consent=Consent(marketing=G))
    ids = declared_ids().keys()
    assert not wants_lookup(full, ids)
    # An id a configured destination sends that the event lacks: a session may know it.
    missing_one = ev(user=User(ip="192.0.2.9", user_agent="U", click_ids=every_id[1:]),
                     consent=Consent(marketing=G))
    assert wants_lookup(missing_one, ids)
    # ...but not when no configured destination sends that id (another platform's).
    assert not wants_lookup(missing_one, [k for k, _ in every_id[1:]])
    assert wants_lookup(ev(user=full.user), ids)  # no consent of its own: a session may know it
    assert enrich(full, CTX, EnrichedFrom.SESSION) is full
    assert enrich(ev(), None, EnrichedFrom.SESSION).enriched_from is None
    empty = SessionContext("s_2")
    assert enrich(ev(), empty, EnrichedFrom.SESSION).enriched_from is None


def test_lookup_offers_session_tokens_and_hashed_identities() -> None:
    e = ev(session_id="s_1", user=User(email=(H1,), external_id=(H2,), phone=(H2,)),
           properties={"cart_token": " c1 ", "checkout_token": "", "order_id": "1"})
    lk = lookup_for(e)
    assert lk.session_id == "s_1"
    assert lk.tokens == (("cart_token", "c1"),)
    # Keyed hashes of the stored digests, not the digests a platform matches on; phones are
    # not identities.
    assert lk.identities == (identity("email", H1), identity("external_id", H2))
    assert identity("email", H1) == "email:" + hmac.new(
        b"pixelrelay/identity", H1.encode(), hashlib.sha256).hexdigest()
    assert H1 not in "".join(lk.identities) and H2 not in "".join(lk.identities)
    assert lookup_for(ev()).empty
    assert lookup_for(ev(properties={"cart_token": 5})).empty


def test_merge_keeps_the_first_landing_and_takes_newer_keys() -> None:
    hit = SessionContext("s_1", ip="198.51.100.2", user_agent="UA2",
                         landing_url="https://shop.test/cart", first_seen=30, last_seen=30,
                         click_ids={"ttclid": "E.C.P.new"})
    merged = merge_context(CTX, hit)
    assert merged == SessionContext("s_1", ip="198.51.100.2", user_agent="UA2",
                                    landing_url=CTX.landing_url, first_seen=10, last_seen=30,
                                    click_ids={"ttclid": "E.C.P.new", "ttp": "2.t"})
    assert merge_context(None, hit) is hit


def test_an_event_without_consent_takes_the_sessions_latest_answer() -> None:
    ctx = SessionContext("s_1", consent=Consent(G, D, G, "DE"), consent_at=5,
                         consent_source="explicit")
    # Marked as the session's, so that a copy's own answer wins over it when copies merge.
    assert take_consent(ev(), ctx).consent == Consent(G, D, G, "DE", basis="session")
    # The event's own region (an order's billing country) is kept.
    assert take_consent(ev(consent=Consent(region="FR")), ctx).consent == Consent(
        G, D, G, "FR", basis="session")
    # An explicit answer on the event wins.
    own = ev(consent=Consent(marketing=D))
    assert take_consent(own, ctx) is own
    assert take_consent(ev(), SessionContext("s_2")).consent == Consent()


def test_merge_keeps_the_latest_consent_answer() -> None:
    first = SessionContext("s_1", consent=Consent(marketing=D), consent_at=1,
                           consent_source="consent_mode")
    later = SessionContext("s_1", consent=Consent(marketing=G), consent_at=9,
                           consent_source="explicit")
    assert merge_context(first, later).consent == Consent(marketing=G)
    assert merge_context(first, later).consent_at == 9
    kept = merge_context(first, SessionContext("s_1", click_ids={"ttclid": "x"}))
    assert (kept.consent, kept.consent_at, kept.consent_source) == (
        Consent(marketing=D), 1, "consent_mode")


def test_a_copys_own_answer_wins_over_one_restored_from_a_session() -> None:
    """The browser copy carries the visitor's own 'yes'; the order's server copy found an
    older session of the same email that said 'no': the visitor's own answer stands, even
    though the server copy is the truth about the order."""
    browser = Event(name="Purchase", event_id="ord_1", event_time=1, channel=Channel.BROWSER,
                    consent=Consent(marketing=G))
    server = Event(name="Purchase", event_id="ord_1", event_time=1, channel=Channel.SHOPIFY,
                   consent=Consent(marketing=D, basis="session"))
    assert merge_copies(browser, server).consent.marketing is G
    stated = Event(name="Purchase", event_id="ord_1", event_time=1, channel=Channel.SHOPIFY,
                   consent=Consent(marketing=D))
    assert merge_copies(browser, stated).consent.marketing is D  # the server's own word


def test_a_copys_own_click_context_wins_over_one_restored_for_the_other() -> None:
    """The order's server copy found an older session of the same email; the browser copy
    carries this order's own click: the merged event keeps the browser copy's ttclid."""
    browser = Event(name="Purchase", event_id="ord_2", event_time=1, channel=Channel.BROWSER,
                    user=User(ip="203.0.113.1", click_ids=(("ttclid", "E.C.P.this-order"),)))
    server = Event(name="Purchase", event_id="ord_2", event_time=1, channel=Channel.SHOPIFY,
                   user=User(ip="198.51.100.9", email=("h",),
                             click_ids=(("ttclid", "E.C.P.older"),)),
                   enriched_from="identity")
    merged = merge_copies(browser, server)
    assert (merged.user.click_id("ttclid"), merged.user.ip) == ("E.C.P.this-order", "203.0.113.1")
    assert merged.user.email == ("h",)
    own = Event(name="Purchase", event_id="ord_2", event_time=1, channel=Channel.SHOPIFY,
                user=User(click_ids=(("ttclid", "E.C.P.server-own"),)))
    assert merge_copies(browser, own).user.click_id("ttclid") == "E.C.P.server-own"
