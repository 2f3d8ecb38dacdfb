"""The storage protocols, split by use: the outbox (ingest and delivery), destinations'
pause state, browser sessions, the ingest log, the diagnostics read models, the ops
commands' operations, admin sessions and retention. `Store` is all of them: one database.

Every implementation (SQLite, PostgreSQL) passes the same contract suite in tests/contract.
Times are Unix seconds passed in by the caller; stores never read the clock. No SQL and no
database driver exist outside store/ (ruff's banned-api rule in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.pipeline.enrich import EnrichedFrom, Lookup, SessionContext
from pixelrelay.records import record
from pixelrelay.store.rollup import ROLL_UP_BATCH
from pixelrelay.store.rows import (
    Candidate,
    IngestNote,
    LaterCopy,
    NotesCall,
    PurchaseRecord,
    QueueRow,
    RecentRow,
    RecentSearch,
    RejectedOrder,
    RejectionRow,
    ReplayFilter,
    Requeue,
    TraceRow,
    WindowRows,
)

IDEMPOTENCY_WINDOW_S = 48 * 3600.0
# Rows re-queued by replay say so until their next attempt replaces the message.
REPLAYED_NOTE = "re-queued by pixelrelay replay"


class InsertOutcome(StrEnum):
    ACCEPTED = "accepted"  # stored, with a delivery per new route
    DUPLICATE = "duplicate"  # every route's key was taken within the window; nothing changed
    MERGED = "merged"  # a duplicate whose copy was folded into the pending first copy


# What the ingest log keeps of an insert, given its outcomes (None: nothing to keep).
IngestLogFor = Callable[[Sequence[InsertOutcome]], NotesCall | None]


@record
class Merged:
    """A pending first copy after a later copy was folded in (see NewEvent.merge)."""

    body: bytes  # the merged event, encoded with store.codec
    routes: Mapping[str, Route]  # destination -> its route of the merged event
    release: bool  # the later copy is the truth: send now, end a browser copy's hold


# The first copy's stored body -> the merge, or None when the later copy adds nothing.
MergeFn = Callable[[bytes], Merged | None]


@record
class NewEvent:
    """An event ready to store, with one route per destination that considered it.

    `merge`, when given, folds this event into an earlier copy whose deliveries are still
    pending, instead of it being dropped as a duplicate. It runs inside the insert's
    transaction, so the first copy cannot be claimed half-merged.
    """

    event: Event
    routes: tuple[Route, ...]
    merge: MergeFn | None = None


@record
class Claimed:
    """A delivery leased to one worker; finish it with the same lease_token."""

    delivery_id: int
    event_id: str
    dest_event: str
    batch_key: str
    payload: bytes
    attempts: int  # attempts made before this claim
    created_at: float  # when the event was accepted
    lease_token: str
    # Transient failures since TikTok last answered a request holding it: sets the backoff.
    retry_streak: int = 0
    # Refused by TikTok together with other events, the refused one not yet isolated: it
    # travels apart from other rows and is split before it is sent again.
    suspect: bool = False


@record
class Finished:
    """The outcome of one claimed delivery. state: DELIVERED, DEAD, or PENDING (retry later)."""

    delivery_id: int
    lease_token: str
    state: DeliveryState
    next_attempt_at: float | None = None
    http_status: int | None = None
    code: int | None = None
    message: str | None = None
    request_id: str | None = None
    dead_reason: str | None = None  # e.g. "rejected", "expired", "max_attempts"
    retry_streak: int = 0  # see Claimed; stored with an attempt's result only
    suspect: bool = False


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One HTTP request to a destination, appended to the attempts log."""

    destination: str
    event_ids: tuple[str, ...]
    http_status: int | None
    code: int | None
    message: str | None
    request_id: str | None
    latency_ms: float
    outcome: str  # delivered | retry | permanent | setup
    at: float


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """What `GET /v1/deliveries?event_id=` shows for one destination."""

    destination: str
    event_id: str
    dest_event: str
    state: DeliveryState
    attempts: int
    last_http_status: int | None
    last_code: int | None
    last_message: str | None
    last_request_id: str | None
    dead_reason: str | None
    reason: str | None  # why suppressed / filtered
    created_at: float
    updated_at: float
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class DestinationState:
    """A destination paused by a setup error waits (queue intact) until resumed."""

    name: str
    paused: bool
    reason: str | None = None
    token_fingerprint: str | None = None  # HMAC of the token that was refused; never the token
    updated_at: float = 0.0


class Outbox(Protocol):
    """Ingest writes events and their deliveries; delivery workers lease and finish them."""

    async def insert(self, batch: Sequence[NewEvent], now: float,
                     ingest_log: IngestLogFor | None = None) -> list[InsertOutcome]:
        """Commit every event and its routes in ONE transaction.

        `ingest_log(outcomes)`: the ingest log's notes of the batch, written in the same
        transaction; a failure there loses the notes (with a warning), never the events.

        DUPLICATE: every route's (destination, dest_event, event_id) was already accepted
        within IDEMPOTENCY_WINDOW_S; routes seen before are not stored again. MERGED: such a
        duplicate whose `merge` updated the first copy's pending deliveries.
        Raises StoreUnavailable when the commit fails (nothing of the batch is kept).
        Returns only after the commit is durable.
        """
        ...

    async def claim(self, destination: str, limit: int, now: float, lease_s: float,
                    retry_before: float | None = None) -> list[Claimed]:
        """Lease up to `limit` due pending deliveries of one destination, oldest first, all of
        one batch_key: the key of the oldest due row.

        `retry_before` (the destination came back from an outage): rows waiting on a retry
        scheduled before it count as due now, so the backlog drains at once in full batches.
        """
        ...

    async def finish(self, results: Sequence[Finished], attempt: AttemptRecord | None,
                     now: float) -> int:
        """Record outcomes where the lease token still matches; returns rows updated."""
        ...

    async def reap_leases(self, now: float) -> int:
        """Return in-flight rows whose lease expired to pending (using the row alone)."""
        ...

    async def expire(self, destination: str, accepted_before: float, now: float) -> int:
        """Mark pending deliveries accepted before the cut-off dead with reason 'expired'."""
        ...

    async def next_due(self, destination: str) -> float | None:
        """The earliest next_attempt_at of the destination's pending rows, or None."""
        ...

    async def deliveries(self, event_id: str) -> list[DeliveryView]: ...

    async def wait_for_work(self, destinations: Sequence[str], timeout: float) -> None:
        """Return when another process may have queued work for one of `destinations`, or
        after `timeout` at the latest. PostgreSQL wakes on NOTIFY (insert sends it in its
        transaction); SQLite has no such signal and simply waits: its callers poll."""
        ...


class Processes(Protocol):
    """The gateway's processes on this database, so shared limits split between them."""

    async def heartbeat(self, process_id: str, role: str, now: float, ttl_s: float) -> int:
        """Record that `process_id` (of `role`: "delivery" | "api") is alive now, forget
        processes silent for `ttl_s`; returns how many of `role` are alive, itself included."""
        ...

    async def leave(self, process_id: str) -> None:
        """A process stopping cleanly: its share goes back to the others at once."""
        ...


class Destinations(Protocol):
    """Each destination's pause state, shared by every process on the database."""

    async def get_destination(self, name: str) -> DestinationState | None: ...

    async def set_destination(self, state: DestinationState) -> None: ...


class Sessions(Protocol):
    """Browser sessions, their cart/checkout token links and identity links (SPEC §2.2)."""

    async def record_session(self, hit: SessionContext, retention_s: float) -> SessionContext:
        """Create or update a session from one browser hit (merge_context), pruning
        sessions and links older than `retention_s` now and then; returns the merged one."""
        ...

    async def get_session(self, session_id: str) -> SessionContext | None: ...

    async def link_token(self, kind: str, token: str, session_id: str, now: float) -> None: ...

    async def link_identities(self, links: Sequence[tuple[str, Sequence[str]]],
                              now: float) -> None:
        """Record (session_id, identities) pairs: who was seen in which session."""
        ...

    async def find_sessions(self, lookups: Sequence[Lookup], identities_since: float
                            ) -> list[tuple[SessionContext, EnrichedFrom] | None]:
        """For each lookup the session found by its session id, else by a linked token,
        else by an identity linked since `identities_since` (most recently seen first)."""
        ...


class IngestLog(Protocol):
    """What ingest refused, absorbed or changed, and refused tag hits: the outbox keeps none."""

    async def record_ingest(self, now: float, channel: str,
                            notes: Sequence[IngestNote]) -> None: ...

    async def record_collect_refusal(self, now: float, reason: str,
                                     origin: str | None) -> None: ...

    async def rejections(self, event_id: str | None,
                         order_id: str | None) -> list[RejectionRow]:
        """Refusals of this event_id or order id, newest first."""
        ...

    async def later_copies(self, event_id: str) -> list[LaterCopy]: ...


class ReadModels(Protocol):
    """What the diagnostics page, its JSON and /metrics read."""

    async def window(self, since: float, bucket_s: float,
                     destinations: Sequence[str] = ()) -> WindowRows:
        """The counts of [since, now): the stored minutes (see roll_up) that are clean, and
        an exact scan of the rest; the same numbers as one scan of the whole window. With
        `destinations`, also their queues as queues() counts them, in the same snapshot,
        from the window's own counts and the rows older than it (no count of every pending
        row)."""
        ...

    async def roll_up(self, now: float, limit: int = ROLL_UP_BATCH) -> int:
        """Compute and store up to `limit` settled minutes of the last 7 d that are missing
        or dirty, oldest first, and forget older ones; returns how many it computed. Call it
        again while it returns `limit`. Any process may; they never count a minute twice."""
        ...

    async def forget_rollups(self) -> None:
        """Drop every stored minute (they are computed again): after a change of what the
        window counts, or to compare against an exact scan."""
        ...

    async def queues(self, names: Sequence[str]) -> list[QueueRow]: ...

    async def recent(self, search: RecentSearch, limit: int = 50) -> list[RecentRow]:
        """Newest events, or those whose event_id starts with q (an order id: ord_<q>_...),
        else of that name; narrowed by the search's state, destination and channel."""
        ...

    async def trace(self, event_id: str) -> list[TraceRow]: ...


class Operations(Protocol):
    """The ops commands' domain operations: replay and the gap report."""

    async def count_replay_candidates(self, f: ReplayFilter) -> int: ...

    async def replay_candidates(self, f: ReplayFilter, after: int,
                                limit: int) -> list[Candidate]:
        """Keyset pages by delivery id, so a large replay never holds every row at once."""
        ...

    async def count_requeue_conflicts(self, destination: str, items: Sequence[Requeue],
                                      now: float) -> int:
        """What requeue would skip as already queued under the new name (a dry run)."""
        ...

    async def requeue(self, destination: str, items: Sequence[Requeue],
                      now: float) -> tuple[int, int]:
        """Put finished deliveries back in the queue with the same event_id; returns
        (re-queued, skipped because the key is held). The idempotency key restarts its
        window, under the same rule as insert."""
        ...

    async def purchase_records(self, destination: str,
                               names: Sequence[str]) -> list[PurchaseRecord]: ...

    async def rejected_orders(self) -> list[RejectedOrder]: ...


class AdminSessions(Protocol):
    """Signed-in admin sessions, keyed by a hash of the id (the id is only in the cookie)."""

    async def open_admin_session(self, id_hash: str, now: float, expires_at: float) -> None:
        """Record a signed-in session (expired ones are pruned on the way)."""
        ...

    async def admin_session_valid(self, id_hash: str, now: float) -> bool:
        """True while the session is open and unexpired."""
        ...

    async def close_admin_session(self, id_hash: str) -> None:
        """End one session (sign-out); closing an unknown one is not an error."""
        ...


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one retention pass deleted."""

    deliveries: int = 0
    events: int = 0
    attempts: int = 0

    @property
    def total(self) -> int:
        return self.deliveries + self.events + self.attempts


class Maintenance(Protocol):
    """Retention: the outbox and the attempts log stay bounded however long the gateway runs."""

    async def prune(self, now: float, retention_s: float, limit: int = 1000) -> Pruned:
        """Delete up to `limit` finished deliveries (delivered, dead, suppressed, filtered)
        accepted before `now - retention_s`, with their idempotency keys and the events left
        without deliveries, then up to `limit` events in all and `limit` attempts older than
        that.

        One short transaction per table, so neither ingest nor claims wait on it; call it
        again while it returns `limit` of anything. `retention_s` must exceed the 48 h
        idempotency window (StorageSettings checks), or a repeat would be accepted again.
        """
        ...


class Store(Outbox, Processes, Destinations, Sessions, IngestLog, ReadModels, Operations,
            AdminSessions, Maintenance, Protocol):
    """Everything one database holds. Each part above is what one kind of caller needs."""

    async def open(self) -> None:
        """Connect and migrate the schema; as the owner, return in-flight rows to pending."""
        ...

    async def close(self) -> None: ...

    async def schema_version(self) -> int:
        """The schema version the open database is at (the last migration it ran)."""
        ...
