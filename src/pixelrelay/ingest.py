"""accept(raw events) -> parse/hash -> consent -> route per destination -> ONE store transaction."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pixelrelay.clock import Clock
from pixelrelay.config import Settings
from pixelrelay.destinations import REGISTRY, id_names, purchase_names
from pixelrelay.destinations.base import Destination
from pixelrelay.errors import ConfigError, Problem
from pixelrelay.model import Channel, Consent, DeliveryState, Event, Route
from pixelrelay.pipeline.consent import BASIS_ASSUMED, apply_consent, with_region
from pixelrelay.pipeline.copies import adds_anything, authoritative, merge_copies
from pixelrelay.pipeline.enrich import (
    EnrichedFrom,
    SessionContext,
    enrich,
    lookup_for,
    server_lookup_for,
    take_consent,
    wants_lookup,
    without_identities,
    without_tokens,
)
from pixelrelay.pipeline.parse import parse_event, too_old
from pixelrelay.recorder import (
    count_ingest,
    ingest_notes,
    record_rejections,
    rejected_note,
)
from pixelrelay.routing import route as route_event
from pixelrelay.store.base import InsertOutcome, Merged, NewEvent, Store
from pixelrelay.store.codec import decode_event, encode_event
from pixelrelay.store.rows import IngestNote


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    problems: tuple[Problem, ...]

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "errors": [p.as_dict() for p in self.problems]}


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    event_ids: list[str | None] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
            "event_ids": self.event_ids,
        }
        if self.warnings:
            body["warnings"] = self.warnings
        return body


class Ingestor:
    """Turns raw events from any source into committed outbox rows.

    `notify` is called with the names of destinations that got new pending rows, after the
    commit, so their delivery workers wake up without polling.
    """

    def __init__(self, settings: Settings, store: Store, destinations: Sequence[Destination],
                 clock: Clock, notify: Callable[[set[str]], None] = lambda names: None,
                 use_sessions: bool = True) -> None:
        self.store = store
        # Imports of old events restore nothing: their sessions are long gone.
        self.use_sessions = use_sessions
        self.identity_window_s = settings.sessions.identity_window_days * 86400.0
        self.destinations = tuple(destinations)
        self.clock = clock
        self.notify = notify
        self.require_consent_in = frozenset(settings.consent.require_in_regions)
        self.max_age_days = {d.name: d.max_age_days for d in settings.destinations}
        # Younger than every destination's window: no age check can refuse it (most events).
        self._surely_young_s = min((self.max_age_days.get(d.name, 7) for d in self.destinations),
                                   default=0) * 86400
        self.phone_region = _shared_phone_region(settings)
        self.purchase_hold_s = settings.sessions.purchase_hold_s
        # The derived event_id (ord_<order>_<snake name>) must equal what the browser tag
        # computes, so it follows the first destination's names.
        self.id_names = id_names(settings.destinations)
        self.id_type = settings.destinations[0].type if settings.destinations else None
        self._purchases = purchase_names()
        # Plaintext personal keys are kept (in memory) only when a destination type hashes
        # them its own way; each such type makes its user object once, stored with the event.
        self._user_hashers = {d.type: hasher for d in settings.destinations
                              if (hasher := REGISTRY[d.type].hash_user) is not None}
        self._keep_plain = bool(self._user_hashers)
        # The click and browser ids the configured destinations send: a server event lacking
        # one of these (not another platform's) is worth a session read.
        self.sent_ids = frozenset(k.key for t in {d.type for d in settings.destinations}
                                  for k in REGISTRY[t].ids)

    async def accept(self, raw_events: Sequence[object], *,
                     channel: Channel = Channel.SERVER,
                     only_destinations: frozenset[str] | None = None,
                     all_or_nothing: bool = False,
                     context: SessionContext | None = None,
                     assume: Consent | None = None, nul_free: bool = False) -> IngestResult:
        """Validate and commit; with all_or_nothing one bad event rejects the whole request.

        `context`: the browser session the events came with (/v1/collect), used instead of a
        lookup to fill the match keys and consent they lack. `assume`: the consent of an event
        that states none and whose session gave no answer (a Shopify source's `assume`).
        `nul_free`: the request's JSON text had no U+0000 escape (readers.may_hold_nul).
        """
        now = self.clock.now()
        result = IngestResult()
        accepted: list[tuple[int, Event]] = []
        refused: list[IngestNote] = []  # diagnostics: each refusal's field and reason, no value
        dests = [d for d in self.destinations
                 if only_destinations is None or d.name in only_destinations]
        # A drop-in endpoint's names are its platform's already: only an exact event_map
        # entry renames them.
        names = (self.id_names.as_sent if channel.platform is not None
                 and channel.platform == self.id_type else self.id_names)
        for index, raw in enumerate(raw_events):
            parsed = parse_event(raw, now=now, phone_region=self.phone_region,
                                 dest_name=names, new_id=_new_id, nul_free=nul_free,
                                 channel=channel, keep_plain=self._keep_plain)
            event = parsed.event
            problems = parsed.problems if event is None else self._age_problems(event, dests, now)
            if problems:
                result.rejected.append(Rejection(index, problems))
                refused.append(rejected_note(raw, event, problems, names))
                # The id it has or would have had, so the sender can look the refusal up.
                result.event_ids.append(refused[-1].event_id or None)
                continue
            assert event is not None
            result.event_ids.append(event.event_id)
            result.warnings.extend(f"events[{index}] {w.text()}" for w in event.warnings)
            accepted.append((index, event))
        if all_or_nothing and result.rejected:
            await record_rejections(self.store, now, channel, refused)
            return result
        events = [e for _, e in accepted]
        links: list[tuple[str, tuple[str, ...]]] = []  # (session, identities) seen together
        if self.use_sessions and events:
            events, links = await self._with_sessions(events, context, now,
                                                      claimed=channel is Channel.BROWSER)
        batch = [self._new_event(e, dests, now, assume) for e in events]
        if not batch:
            await record_rejections(self.store, now, channel, refused)
            return result
        # The ingest log goes in the events' transaction (the notes depend on the outcomes).
        outcomes = await self.store.insert(
            batch, now, ingest_log=functools.partial(ingest_notes, now, channel, refused, batch))
        count_ingest(refused, batch, outcomes, self.id_names)
        for outcome in outcomes:
            if outcome is InsertOutcome.ACCEPTED:
                result.accepted += 1
            else:
                result.duplicates += 1
        woken = {r.destination for n, o in zip(batch, outcomes, strict=True)
                 if o is not InsertOutcome.DUPLICATE
                 for r in n.routes if r.state is DeliveryState.PENDING}
        if woken:
            self.notify(woken)
        if links:
            # After the events' commit: a failure here loses a link, never an event.
            await self.store.link_identities(links, now)
        return result

    async def _with_sessions(self, events: list[Event], context: SessionContext | None,
                             now: float, *, claimed: bool
                             ) -> tuple[list[Event], list[tuple[str, tuple[str, ...]]]]:
        """Restore the session's match keys and consent that events lack (SPEC §2.2): from
        the browser context they came with, else by session id, cart/checkout token or
        identity, with one read for the whole batch. Also returns the (session, identities)
        pairs to link.

        `claimed`: the events came with the public site key, so their identities are only
        claims: they neither find a session nor link one (anyone can type anyone's email).
        """
        # Whether a session could add anything to each event, decided once (a server event's).
        wants = [] if context is not None else [wants_lookup(e, self.sent_ids) for e in events]
        lookups = [lookup_for(e) for e in events] if context is not None else [
            server_lookup_for(e, w) for e, w in zip(events, wants, strict=True)]
        if claimed:
            lookups = [without_identities(lk) for lk in lookups]
        wanted = [] if context is not None else [
            i for i, (w, lk) in enumerate(zip(wants, lookups, strict=True))
            if (not lk.empty and w) or (lk.tokens and lk.identities)]
        found = dict(zip(wanted, await self.store.find_sessions(
            [lookups[i] for i in wanted], now - self.identity_window_s), strict=True)
        ) if wanted else {}
        out: list[Event] = []
        links: list[tuple[str, tuple[str, ...]]] = []
        for i, (event, lookup) in enumerate(zip(events, lookups, strict=True)):
            session_id, hit = event.session_id, found.get(i)
            if context is not None:
                event = take_consent(enrich(event, context, EnrichedFrom.SESSION), context)
                session_id = context.session_id
            elif hit is not None:
                event = take_consent(enrich(event, hit[0], hit[1]), hit[0])
                if hit[1] is not EnrichedFrom.IDENTITY:
                    # A session found through the identity is not re-linked to it: that
                    # would keep an old context alive past identity_window_days.
                    session_id = hit[0].session_id
            if session_id is not None and lookup.identities:
                links.append((session_id, lookup.identities))
            out.append(event)
        return out, links

    def _new_event(self, event: Event, dests: Sequence[Destination], now: float,
                   assume: Consent | None) -> NewEvent:
        event = without_tokens(event)
        if assume is not None and event.consent.is_empty:
            event = replace(event, consent=replace(assume, region=event.consent.region,
                                                   basis=BASIS_ASSUMED))
        # Hashed before consent is applied, which removes them with the rest when it says no.
        stated = self._with_hashed_users(with_region(event))
        event = apply_consent(stated, self.require_consent_in)
        # A later copy merges as it came, before its consent is applied: the merged event's
        # consent (the first copy's own answer may win, pipeline.copies) decides what stays.
        return NewEvent(event, self._routes(event, dests, now),
                        merge=functools.partial(self._merge, stated, dests, now))

    def _with_hashed_users(self, event: Event) -> Event:
        """The event with the user object of each destination type that hashes its own way
        (Event.hashed_users), made from the plaintext view; an empty one is not kept."""
        if event.plain is None or not self._user_hashers:
            return event
        hashed = {kind: user for kind, hasher in self._user_hashers.items()
                  if (user := hasher(event))}
        return replace(event, hashed_users=hashed) if hashed else event

    def _routes(self, event: Event, dests: Sequence[Destination],
                now: float) -> tuple[Route, ...]:
        routes = []
        hold = event.channel is Channel.BROWSER and self.purchase_hold_s > 0
        young = now - event.event_time <= self._surely_young_s
        for dest in dests:
            if young or too_old(event.event_time, now,
                                self.max_age_days.get(dest.name, 7)) is None:
                route = route_event(dest, event)
                if hold and route.state is DeliveryState.PENDING and (
                        route.dest_event in self._purchases):
                    route = replace(route, not_before=now + self.purchase_hold_s)
                routes.append(route)
        return tuple(routes)

    def _merge(self, later: Event, dests: Sequence[Destination], now: float,
               stored: bytes) -> Merged | None:
        """Fold `later` into the stored first copy (runs in the store's transaction)."""
        first = decode_event(stored)
        merged = apply_consent(merge_copies(first, later), self.require_consent_in)
        if not adds_anything(first, merged):
            return None
        return Merged(body=encode_event(merged),
                      routes={r.destination: r for r in self._routes(merged, dests, now)},
                      release=authoritative(first, later))

    def _age_problems(self, event: Event, dests: Sequence[Destination],
                      now: float) -> tuple[Problem, ...]:
        """The event is refused when every destination's age window excludes it."""
        if dests and now - event.event_time <= self._surely_young_s:
            return ()
        problems = [(d.name, too_old(event.event_time, now, self.max_age_days.get(d.name, 7)))
                    for d in dests]
        if not dests or any(p is None for _, p in problems):
            return ()
        name, first = problems[0]
        assert first is not None
        return (Problem(first.field, f"{first.reason} (destination {name})", first.detail),)


def _new_id() -> str:
    return str(uuid.uuid4())


def _shared_phone_region(settings: Settings) -> str:
    """Phones are hashed once, before routing, so every destination must agree on the region."""
    regions = {d.default_phone_region for d in settings.destinations if d.default_phone_region}
    if len(regions) > 1:
        raise ConfigError("destinations.default_phone_region",
                          f"destinations disagree ({sorted(regions)}); phones are hashed once "
                          "before routing, so give every destination the same region")
    return regions.pop() if regions else ""
