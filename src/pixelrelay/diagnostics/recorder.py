"""Ingest's hook: count what it accepted, refused or absorbed (metrics + the two ingest tables)."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from pixelrelay import metrics
from pixelrelay.destinations.tiktok.mapping import default_tiktok_name
from pixelrelay.diagnostics.queries import IngestNote, mask_reason, record_notes
from pixelrelay.errors import PixelrelayError, Problem
from pixelrelay.model import DeliveryState
from pixelrelay.store.base import NewEvent

log = logging.getLogger(__name__)


def rejected_note(raw: object, name: str | None, problems: Sequence[Problem]) -> IngestNote:
    if name is None:
        given = raw.get("event") if isinstance(raw, dict) else None
        name = given if isinstance(given, str) and given else "(none)"
    first = problems[0] if problems else Problem("", "rejected")
    return IngestNote("rejected", name, first.field, mask_reason(first.reason), len(problems))


async def record_ingest(store: Any, now: float, channel: str, rejected: list[IngestNote],
                        batch: Sequence[NewEvent], outcomes: Sequence[bool]) -> None:
    """Called once per request after the commit; never fails the request it counts."""
    notes = list(rejected)
    # Tallied per label set first: resolving a labelled child per event is the costly part.
    tally: Tally[tuple[str, ...]] = Tally()
    # No destination yet: the metric label is the incoming name through the default mapping,
    # as the TikTok name labels every other event counter (see metrics.py).
    for note in rejected:
        tally["rejected", default_tiktok_name(note.event)] += 1
    for item, ok in zip(batch, outcomes, strict=True):
        name = item.event.name
        if not ok:
            tally["duplicate", default_tiktok_name(name)] += 1
            notes.append(IngestNote("duplicate", name, event_id=item.event.event_id))
            continue
        notes += [IngestNote(str(w.kind), name, w.field) for w in item.event.warnings]
        for r in item.routes:
            tally["received", r.destination, r.dest_event] += 1
            if r.state is DeliveryState.SUPPRESSED:
                tally["suppressed", r.destination, r.dest_event] += 1
            elif r.state is DeliveryState.FILTERED:
                tally["filtered", r.destination, r.dest_event] += 1
    for (kind, *labels), n in tally.items():
        if kind == "rejected":
            metrics.REJECTED.labels("", *labels, "ingest").inc(n)
        elif kind == "duplicate":
            metrics.DUPLICATES.labels(*labels).inc(n)
        else:
            {"received": metrics.RECEIVED, "suppressed": metrics.SUPPRESSED,
             "filtered": metrics.FILTERED}[kind].labels(*labels).inc(n)
    write = getattr(store, "write", None)  # the SQL feature hook; stores without it skip
    if not notes or write is None:
        return
    try:
        await write(lambda conn: record_notes(conn, now, channel, notes))
    except PixelrelayError as exc:  # the events are committed; only the tally is lost
        log.warning("could not record %d ingest rejections/duplicates: %s", len(notes), exc)
