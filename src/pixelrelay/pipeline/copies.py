"""Fold a later copy of an event (same destination, destination name, event_id) into the pending
first one: every copy's match keys count, and a server copy is the truth over a browser one."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from pixelrelay.model import JSON, Channel, Event, User, click_ids_of

MAX_IDS = 10  # as the parser allows per key
_LIST_KEYS = ("email", "phone", "external_id")
_SCALAR_KEYS = tuple(f.name for f in fields(User) if f.name not in (*_LIST_KEYS, "click_ids"))
# What a session restores onto an event (pipeline.enrich), as opposed to what a copy states:
# these and the click and browser ids.
_CONTEXT_KEYS = ("ip", "user_agent")


def authoritative(first: Event, later: Event) -> bool:
    """True when `later` should win over `first`: a server-side copy (backend, drop-in,
    Shopify, import) over the browser tag's, whose site key anyone can read."""
    return first.channel is Channel.BROWSER and later.channel is not Channel.BROWSER


def merge_copies(first: Event, later: Event) -> Event:
    """The first copy with what the later one adds; the stored row keeps first's identity.

    Match keys: each missing key is filled, lists are united. Properties, page, time and an
    explicit consent come from the authoritative copy (see `authoritative`), the other
    copy's properties filling only keys it lacks.
    """
    later_wins = authoritative(first, later)
    base, other = (later, first) if later_wins else (first, later)
    user = _merge_user(base.user, other.user)
    if base.enriched_from is not None and other.enriched_from is None:
        # base's click and browser context was restored from a session found for it (maybe
        # an older one of the same person); the other copy's own context is this order's.
        user = replace(user.with_click_ids(dict(other.user.click_ids)),
                       **{k: v for k in _CONTEXT_KEYS
                          if (v := getattr(other.user, k)) is not None})
    # The event's own answer first (the authoritative copy's, else the other's); one restored
    # from a session or assumed only where neither copy stated one.
    consent = next((c for c in (base.consent, other.consent)
                    if not c.is_empty and c.basis is None),
                   base.consent if not base.consent.is_empty else other.consent)
    if consent.region is None and other.consent.region is not None:
        consent = replace(consent, region=other.consent.region)
    return replace(
        first,
        event_time=base.event_time,
        user=user,
        page=base.page if base.page.url or base.page.referrer else other.page,
        properties={**other.properties, **base.properties},
        consent=consent,
        session_id=first.session_id or later.session_id,
        order_source=base.order_source or other.order_source,
        action_source=base.action_source or other.action_source,
        enriched_from=first.enriched_from or later.enriched_from,
        limited_data_use=_any(first.limited_data_use, later.limited_data_use),
        copies=(*first.copies, str(later.channel)),
        hashed_users=_merge_hashed_users(base.hashed_users, other.hashed_users),
    )


def adds_anything(first: Event, merged: Event) -> bool:
    """Whether the merge changed what TikTok would receive (else it is a plain duplicate)."""
    return replace(merged, copies=first.copies) != first


def _merge_user(base: User, other: User) -> User:
    values: dict[str, object] = {}
    for key in _LIST_KEYS:
        mine: tuple[str, ...] = getattr(base, key)
        values[key] = (*mine, *(h for h in getattr(other, key) if h not in mine))[:MAX_IDS]
    for key in _SCALAR_KEYS:
        mine_value = getattr(base, key)
        values[key] = mine_value if mine_value is not None else getattr(other, key)
    values["click_ids"] = (base.click_ids if not other.click_ids else
                           click_ids_of({**dict(other.click_ids), **dict(base.click_ids)}))
    return User(**values)  # type: ignore[arg-type]


def _merge_hashed_users(base: JSON, other: JSON) -> JSON:
    """Each destination type's stored user object of both copies: lists of digests united
    (base's first), any other value base's where it has one."""
    if not other:
        return base
    merged: JSON = {}
    for kind in (*base, *(k for k in other if k not in base)):
        mine: dict[str, Any] = base.get(kind) or {}
        theirs: dict[str, Any] = other.get(kind) or {}
        keys = (*mine, *(k for k in theirs if k not in mine))
        merged[kind] = {k: _united(mine.get(k), theirs.get(k)) for k in keys}
    return merged


def _united(mine: Any, theirs: Any) -> Any:
    if isinstance(mine, list) and isinstance(theirs, list):
        return [*mine, *(v for v in theirs if v not in mine)][:MAX_IDS]
    return mine if mine is not None else theirs


def _any(a: bool | None, b: bool | None) -> bool | None:
    if a is None and b is None:
        return None
    return bool(a) or bool(b)
