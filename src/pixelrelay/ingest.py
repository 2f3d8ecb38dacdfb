"""accept(raw events) -> parse/hash -> consent -> route per destination -> ONE store transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pixelrelay.clock import Clock
from pixelrelay.config import Settings
from pixelrelay.destinations.base import Destination
from pixelrelay.destinations.tiktok.mapping import EventNames
from pixelrelay.diagnostics.queries import IngestNote
from pixelrelay.diagnostics.recorder import record_ingest, rejected_note
from pixelrelay.errors import ConfigError, Problem
from pixelrelay.model import Channel, DeliveryState, Event, Route
from pixelrelay.pipeline.consent import apply_consent
from pixelrelay.pipeline.enrich import (
    EnrichedFrom,
    SessionContext,
    enrich,
    lacks_context,
    lookup_for,
)
from pixelrelay.pipeline.parse import parse_event, too_old
from pixelrelay.sessions import SessionStore
from pixelrelay.store.base import NewEvent, Store


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
                 sessions: SessionStore | None = None) -> None:
        self.store = store
        self.sessions = sessions
        self.destinations = tuple(destinations)
        self.clock = clock
        self.notify = notify
        self.require_consent_in = frozenset(settings.consent.require_in_regions)
        self.max_age_days = {d.name: d.max_age_days for d in settings.destinations}
        self.phone_region = _shared_phone_region(settings)
        # The derived event_id (ord_<order>_<snake TikTok name>) must equal what the browser tag
        # computes, so it follows the first destination's mapping.
        self._id_name = EventNames(
            settings.destinations[0].event_map if settings.destinations else {})

    async def accept(self, raw_events: Sequence[object], *,
                     channel: Channel = Channel.SERVER,
                     only_destinations: frozenset[str] | None = None,
                     all_or_nothing: bool = False,
                     context: SessionContext | None = None) -> IngestResult:
        """Validate and commit; with all_or_nothing one bad event rejects the whole request.

        `context`: the browser session the events came with (/v1/collect), used instead of a
        lookup to fill the match keys they lack.
        """
        now = self.clock.now()
        result = IngestResult()
        batch: list[NewEvent] = []
        positions: list[int] = []
        refused: list[IngestNote] = []  # diagnostics: each refusal's field and reason, no value
        dests = [d for d in self.destinations
                 if only_destinations is None or d.name in only_destinations]
        names = self._id_name.as_sent if channel is Channel.TIKTOK_API else self._id_name
        for index, raw in enumerate(raw_events):
            parsed = parse_event(raw, now=now, phone_region=self.phone_region,
                                 tiktok_name=names, new_id=_new_id)
            event = parsed.event
            if event is not None and channel is not Channel.SERVER:
                event = replace(event, channel=channel)
            if event is None:
                result.rejected.append(Rejection(index, parsed.problems))
                refused.append(rejected_note(raw, None, parsed.problems))
                result.event_ids.append(_given_id(raw))
                continue
            new, problem = self._route(apply_consent(event, self.require_consent_in), dests, now)
            if problem is not None:
                result.rejected.append(Rejection(index, (problem,)))
                refused.append(rejected_note(raw, event.name, (problem,)))
                result.event_ids.append(event.event_id)
                continue
            result.event_ids.append(event.event_id)
            result.warnings.extend(f"events[{index}] {w.text()}" for w in event.warnings)
            batch.append(new)
            positions.append(index)
        if all_or_nothing and result.rejected:
            await record_ingest(self.store, now, channel, refused, (), ())
            return result
        links: list[tuple[str, tuple[str, ...]]] = []  # (session, identities) seen together
        if self.sessions is not None and batch:
            batch, links = await self._enrich(batch, context, dests, now)
        outcomes: list[bool] = []
        if batch:
            outcomes = await self.store.insert(batch, now)
            for ok in outcomes:
                if ok:
                    result.accepted += 1
                else:
                    result.duplicates += 1
            woken = {r.destination for n, ok in zip(batch, outcomes, strict=True) if ok
                     for r in n.routes if r.state is DeliveryState.PENDING}
            if woken:
                self.notify(woken)
        if links and self.sessions is not None:
            # After the events' commit: a failure here loses a link, never an event.
            await self.sessions.link_identities(links, now)
        await record_ingest(self.store, now, channel, refused, batch, outcomes)
        return result

    async def _enrich(self, batch: list[NewEvent], context: SessionContext | None,
                      dests: Sequence[Destination], now: float
                      ) -> tuple[list[NewEvent], list[tuple[str, tuple[str, ...]]]]:
        """Restore the session match keys events lack (SPEC §2.2): from the browser context
        they came with, else by session id, cart/checkout token or identity, with one read
        for the whole batch. Enriched events are routed again (only their user changed, so
        their routes keep the same states). Also returns the (session, identities) to link.
        """
        assert self.sessions is not None
        lookups = [lookup_for(item.event) for item in batch]
        wanted = [] if context is not None else [
            i for i, (item, lk) in enumerate(zip(batch, lookups, strict=True))
            if (lacks_context(item.event) and not lk.empty) or (lk.tokens and lk.identities)]
        found = dict(zip(wanted, await self.sessions.find([lookups[i] for i in wanted], now),
                         strict=True)) if wanted else {}
        out: list[NewEvent] = []
        links: list[tuple[str, tuple[str, ...]]] = []
        for i, (item, lookup) in enumerate(zip(batch, lookups, strict=True)):
            event, session_id, hit = item.event, item.event.session_id, found.get(i)
            if context is not None:
                event, session_id = enrich(event, context, EnrichedFrom.SESSION), context.session_id
            elif hit is not None:
                event = enrich(event, hit[0], hit[1])
                if hit[1] is not EnrichedFrom.IDENTITY:
                    # A session found through the identity is not re-linked to it: that
                    # would keep an old context alive past identity_window_days.
                    session_id = hit[0].session_id
            if session_id is not None and lookup.identities:
                links.append((session_id, lookup.identities))
            out.append(item if event is item.event else self._route(event, dests, now)[0])
        return out, links

    def _route(self, event: Event, dests: Sequence[Destination],
               now: float) -> tuple[NewEvent, Problem | None]:
        routes: list[Route] = []
        age_problem: Problem | None = None
        for dest in dests:
            problem = too_old(event.event_time, now, self.max_age_days.get(dest.name, 7))
            if problem is not None:
                age_problem = Problem(problem.field, f"{problem.reason} (destination {dest.name})")
                continue
            routes.append(dest.route(event, now))
        if dests and not routes and age_problem is not None:
            return NewEvent(event, ()), age_problem
        return NewEvent(event, tuple(routes)), None


def _new_id() -> str:
    return str(uuid.uuid4())


def _given_id(raw: object) -> str | None:
    if isinstance(raw, dict):
        eid = raw.get("event_id")
        if isinstance(eid, str):
            return eid
    return None


def _shared_phone_region(settings: Settings) -> str:
    """Phones are hashed once, before routing, so every destination must agree on the region."""
    regions = {d.default_phone_region for d in settings.destinations if d.default_phone_region}
    if len(regions) > 1:
        raise ConfigError("destinations.default_phone_region",
                          f"destinations disagree ({sorted(regions)}); phones are hashed once "
                          "before routing, so give every destination the same region")
    return regions.pop() if regions else ""
