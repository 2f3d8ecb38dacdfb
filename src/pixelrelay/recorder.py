"""What ingest records of each request for the diagnostics: refused and accepted events' notes
(never a value of them), the event counters, and refused tag hits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pixelrelay import metrics
from pixelrelay.errors import PixelrelayError, Problem
from pixelrelay.event_ids import order_event_id
from pixelrelay.masking import mask_field, mask_reason
from pixelrelay.model import DeliveryState, Event
from pixelrelay.names import snake_case
from pixelrelay.pipeline.pii import PERSONAL_KEY, looks_personal
from pixelrelay.pipeline.readers import NUL
from pixelrelay.store.base import IngestLog, InsertOutcome, NewEvent
from pixelrelay.store.rows import IngestNote, NotesCall

MAX_SAMPLE = 10  # problems kept per refused event

log = logging.getLogger(__name__)


def rejected_note(raw: object, event: Event | None, problems: Sequence[Problem],
                  names: Callable[[str, str], str]) -> IngestNote:
    """What is kept of a refused event: its name, ids and problems, never a value of it.

    The event_id is the given one, else the one the order id would have derived, so the
    gap report and a search by the order's event_id find the refusal.
    """
    doc = raw if isinstance(raw, dict) else {}
    given = doc.get("event")
    name = event.name if event is not None else (
        given.strip()[:128] if isinstance(given, str) and given.strip() and NUL not in given
        else "(none)")
    if event is None and looks_personal(name):
        name = PERSONAL_KEY  # refused for it: the name is a value, and not kept
    props = doc.get("properties")
    order = props.get("order_id") if isinstance(props, dict) else None
    order_id = _plain_id(order)
    event_id = event.event_id if event is not None else _plain_id(doc.get("event_id"))
    if event_id is None and order_id is not None and name != "(none)":
        source = doc.get("source") if isinstance(doc.get("source"), str) else "web"
        event_id = order_event_id(order_id, snake_case(names(name, str(source).lower())))
    first = problems[0] if problems else Problem("", "rejected")
    sample = [{"field": mask_field(p.field), "reason": mask_reason(p.reason)}
              for p in problems[:MAX_SAMPLE]]
    return IngestNote("rejected", name, mask_field(first.field), mask_reason(first.reason),
                      len(problems), event_id=event_id or "", order_id=order_id or "",
                      sample=tuple(sample))


def _plain_id(v: object) -> str | None:
    """An id as a string, unless it is long or looks like an email (a value, not an id)."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v.strip() or len(v) > 128 or "@" in v or NUL in v:
        return None
    return v.strip()


def ingest_notes(now: float, channel: str, rejected: Sequence[IngestNote],
                 batch: Sequence[NewEvent], outcomes: Sequence[InsertOutcome]) -> NotesCall | None:
    """The ingest log of one request: its refusals, its duplicates and the notices of what it
    accepted. The store calls it with the outcomes inside the insert's transaction, so the
    log costs no commit of its own."""
    notes = list(rejected)
    for item, outcome in zip(batch, outcomes, strict=True):
        name = item.event.name
        if outcome is not InsertOutcome.ACCEPTED:
            notes.append(IngestNote("duplicate", name, event_id=item.event.event_id,
                                    merged=outcome is InsertOutcome.MERGED))
        else:
            notes += [IngestNote(str(w.kind), name, mask_field(w.field))
                      for w in item.event.warnings]
    return (now, channel, notes) if notes else None


def count_ingest(rejected: Sequence[IngestNote], batch: Sequence[NewEvent],
                 outcomes: Sequence[InsertOutcome],
                 names: Callable[[str], str] = lambda name: name) -> None:
    """The event counters of one request, after the commit. `names`: the first
    destination's, which label the counts no destination has made yet (see metrics.py)."""
    tally: metrics.Tally = {}
    for note in rejected:
        key: tuple[Any, ...] = (metrics.REJECTED, "", names(note.event), "ingest")
        tally[key] = tally.get(key, 0) + 1
    for item, outcome in zip(batch, outcomes, strict=True):
        if outcome is not InsertOutcome.ACCEPTED:
            key = (metrics.DUPLICATES, names(item.event.name))
            tally[key] = tally.get(key, 0) + 1
            continue
        for r in item.routes:
            key = (metrics.RECEIVED, r.destination, r.dest_event)
            tally[key] = tally.get(key, 0) + 1
            also = _ROUTE_COUNTERS.get(r.state)
            if also is not None:
                key = (also, r.destination, r.dest_event)
                tally[key] = tally.get(key, 0) + 1
    metrics.count_all(tally)


_ROUTE_COUNTERS = {DeliveryState.SUPPRESSED: metrics.SUPPRESSED,
                   DeliveryState.FILTERED: metrics.FILTERED}


async def record_rejections(store: IngestLog, now: float, channel: str,
                            rejected: Sequence[IngestNote]) -> None:
    """The log and counters of a request that stored nothing (its insert carries them
    otherwise); never fails the request it counts."""
    count_ingest(rejected, (), ())
    if not rejected:
        return
    try:
        await store.record_ingest(now, channel, rejected)
    except PixelrelayError as exc:  # only the log is lost
        log.warning("could not record %d ingest rejections: %s", len(rejected), exc)


async def record_collect_refusal(store: IngestLog, now: float, reason: str,
                                 origin: str | None, *, write: bool = True) -> None:
    """A refused tag hit, by reason and origin (a site, not a person); never fails the hit.
    `write=False`: counted in /metrics only (the caller's budget of writes is spent)."""
    metrics.child(metrics.COLLECT_REFUSED, reason).inc()
    if not write:
        return
    try:
        await store.record_collect_refusal(now, reason, origin[:200] if origin else None)
    except PixelrelayError as exc:
        log.warning("could not record a refused tag hit: %s", exc)
