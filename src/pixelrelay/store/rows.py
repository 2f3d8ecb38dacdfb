"""Typed rows the stores read and write beyond the outbox: ingest notes, diagnostics read
models, and what the ops commands (replay, gap report) select. No SQL here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from pixelrelay.event_ids import ORDER_PREFIX
from pixelrelay.model import DeliveryState

LATENCY_SAMPLE = 100_000  # p50/p95 over the newest deliveries of the window, to bound memory
PRUNE_AFTER_S = 8 * 86400.0  # ingest notes outlive the longest diagnostics window (7 d)


# -- what ingest refused, absorbed or changed (the outbox keeps none of it) --------------------

@dataclass(frozen=True, slots=True)
class IngestNote:
    """What ingest refused or absorbed, kept because the outbox stores neither."""

    kind: str  # "rejected" | "duplicate" | a NoticeKind (a kept event's dropped field...)
    event: str
    field: str = ""  # rejected: the first problem's field; notice: the field it names
    reason: str = ""  # rejected: its reason (our own text; never a value)
    problems: int = 1
    event_id: str = ""  # duplicate; rejected: as given or as the order id derives it
    order_id: str = ""  # rejected: properties.order_id
    sample: tuple[dict[str, str], ...] = ()  # rejected: every problem, field and reason
    merged: bool = False  # duplicate: folded into its pending first copy


log = logging.getLogger(__name__)
T = TypeVar("T")
NotesCall = tuple[float, str, Sequence[IngestNote]]  # one record_ingest: at, channel, notes


@dataclass(slots=True)
class IngestLogRows:
    """The rows record_ingest calls add to the ingest log's three tables."""

    # at, channel, event, field, reason, problems, event_id, order_id, sample (JSON)
    rejected: list[tuple[Any, ...]] = field(default_factory=list)
    # at, channel, event, event_id, merged
    duplicates: list[tuple[Any, ...]] = field(default_factory=list)
    notices: list[tuple[Any, ...]] = field(default_factory=list)  # at, channel, event, field, kind
    browser_duplicates: list[str] = field(default_factory=list)  # their event_ids
    latest: float = 0.0  # the newest call's time: what is older than a prune's reach goes


def notes_of(calls: Sequence[tuple[object, float, Callable[[T], NotesCall | None] | None]],
             outcomes: Sequence[T]) -> list[NotesCall]:
    """The ingest log of a group's insert calls (prepared rows, time, log), given each
    call's outcomes; a call whose log fails loses only its own notes."""
    found: list[NotesCall] = []
    for (_rows, _now, log_for), out in zip(calls, outcomes, strict=True):
        try:
            notes = log_for(out) if log_for is not None else None
        except Exception as exc:  # the events are in; only this request's log is lost
            log.warning("could not record the ingest log of a request: %r", exc)
            continue
        if notes is not None:
            found.append(notes)
    return found


def ingest_log_rows(calls: Sequence[NotesCall]) -> IngestLogRows:
    out = IngestLogRows()
    for at, channel, notes in calls:
        out.latest = max(out.latest, at)
        for n in notes:
            if n.kind == "rejected":
                out.rejected.append((at, channel, n.event[:128], n.field[:128], n.reason,
                                     n.problems, n.event_id[:256] or None,
                                     n.order_id[:128] or None, orjson.dumps(n.sample).decode()))
            elif n.kind == "duplicate":
                out.duplicates.append((at, channel, n.event[:128], n.event_id[:256], n.merged))
                if channel == "browser":
                    out.browser_duplicates.append(n.event_id[:256])
            else:
                out.notices.append((at, channel, n.event[:128], n.field[:128], n.kind))
    return out


@dataclass(frozen=True, slots=True)
class RejectionRow:
    at: float
    channel: str
    event: str
    event_id: str | None
    order_id: str | None
    problems: list[dict[str, str]]  # field and reason of each, never a value


@dataclass(frozen=True, slots=True)
class LaterCopy:
    """A copy of an event_id that arrived after the first: merged or a plain duplicate."""

    at: float
    channel: str
    merged: bool


# -- the diagnostics window --------------------------------------------------------------------

@dataclass(slots=True)
class WindowRows:
    """Raw counts for one window; diagnostics/report.py turns them into the report."""

    accepted: list[tuple[str, int]] = field(default_factory=list)  # name, n
    duplicates: list[tuple[str, int, int]] = field(default_factory=list)  # name, n, merged
    ingest_rejections: list[tuple[str, str, str, int]] = field(default_factory=list)
    # destination, name, dest_event, state, dead_reason, n
    deliveries: list[tuple[str, str, str, str, str | None, int]] = field(default_factory=list)
    # destination, name, dead_reason, code, message, n
    dead: list[tuple[str, str, str | None, int | None, str | None, int]] = field(
        default_factory=list)
    # name, dest_event, n, then one count per diagnostics.report.KEYS entry
    coverage: list[tuple[Any, ...]] = field(default_factory=list)
    notices: list[tuple[str, str, str, int]] = field(default_factory=list)  # event, field, kind, n
    # reason, origin, n: tag hits refused before any event was read
    collect_refusals: list[tuple[str, str | None, int]] = field(default_factory=list)
    dedup: list[tuple[str, int, int]] = field(default_factory=list)  # name, server, also browser
    enrichment: list[tuple[str, int, int]] = field(default_factory=list)  # name, server, enriched
    latencies: list[tuple[str, float]] = field(default_factory=list)  # destination, seconds
    trend_received: list[tuple[int, int]] = field(default_factory=list)  # bucket, n
    trend_delivered: list[tuple[int, int]] = field(default_factory=list)
    # The destinations asked for, in the same snapshot; what queues() counts (see window()).
    queues: list[QueueRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One destination's queue and pause state (also the Prometheus gauges)."""

    destination: str
    pending: int
    in_flight: int
    oldest_pending_at: float | None
    paused: bool
    paused_reason: str | None
    paused_at: float | None


@dataclass(frozen=True, slots=True)
class RecentSearch:
    """The page's search: q is an event_id prefix, an order id or an event name; the rest,
    when set, keep only events with a delivery in that state / to that destination (both on
    the same delivery) or that came in by that channel."""

    q: str = ""
    state: str = ""
    destination: str = ""
    channel: str = ""


def recent_prefixes(q: str) -> list[dict[str, str]]:
    """The id ranges a search tries in turn, on both engines: an event_id prefix, else an
    order id (its purchase is ord_<order id>_...)."""
    return [{"q": p, "hi": p + "\U0010ffff"} for p in ((q, f"{ORDER_PREFIX}{q}_") if q else ())]


def recent_filters(search: RecentSearch, limit: int) -> dict[str, object]:
    """The named parameters of the recent-events queries, on both engines."""
    return {"channel": search.channel, "dest": search.destination, "state": search.state,
            "limit": limit}


@dataclass(frozen=True, slots=True)
class RecentRow:
    event_id: str
    name: str
    received_at: float
    channel: str
    states: str  # "destination:state, ..."


@dataclass(frozen=True, slots=True)
class AttemptRow:
    at: float
    http_status: int | None
    code: int | None
    message: str | None
    request_id: str | None
    latency_ms: float
    outcome: str
    batch_size: int


@dataclass(frozen=True, slots=True)
class TraceRow:
    destination: str
    dest_event: str
    state: str
    attempts: int
    last_code: int | None
    last_message: str | None
    last_request_id: str | None
    dead_reason: str | None
    reason: str | None
    created_at: float
    delivered_at: float | None
    payload: bytes | None  # the destination's item as sent (hashed)
    body: bytes  # the stored event (hashed)
    log: list[AttemptRow]


# -- the ops commands --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReplayFilter:
    destination: str
    states: tuple[DeliveryState, ...]
    since: float | None  # on events.received_at: when the gateway accepted the event
    until: float | None
    event: str | None  # incoming or destination event name


@dataclass(frozen=True, slots=True)
class Candidate:
    """A finished delivery that replay may put back in the queue."""

    delivery_id: int
    event_id: str
    dest_event: str
    state: DeliveryState
    delivered_at: float | None
    superseded: bool  # a later copy of the same (event_id, destination, name) holds the key
    body: bytes  # the stored, hashed event (store/codec.py)


@dataclass(frozen=True, slots=True)
class Requeue:
    """One delivery to send again, with the payload the destination's current config builds."""

    delivery_id: int
    event_id: str
    old_state: DeliveryState
    old_dest_event: str
    dest_event: str
    batch_key: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    """One delivery of a purchase event, with what the order matching needs from the event."""

    event_id: str
    name: str
    dest_event: str
    state: DeliveryState
    reason: str | None
    dead_reason: str | None
    attempts: int
    last_code: int | None
    last_message: str | None
    event_time: int
    received_at: float
    order_id: str | None  # properties.order_id as stored
    value: float | None


@dataclass(frozen=True, slots=True)
class RejectedOrder:
    """An event refused at ingest that named an order: what the gap report explains."""

    order_id: str
    event: str  # the incoming name
    field: str
    reason: str
    at: float
