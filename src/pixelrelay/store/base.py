"""The Store protocol: the durable outbox shared by ingest (insert) and delivery (claim/finish).

Every implementation (SQLite now, PostgreSQL later) passes the same contract suite in
tests/contract. Times are Unix seconds passed in by the caller; stores never read the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pixelrelay.model import DeliveryState, Event, Route

IDEMPOTENCY_WINDOW_S = 48 * 3600.0


class InsertOutcome(StrEnum):
    ACCEPTED = "accepted"  # stored, with a delivery per new route
    DUPLICATE = "duplicate"  # every route's key was taken within the window; nothing changed
    MERGED = "merged"  # a duplicate whose copy was folded into the pending first copy


@dataclass(frozen=True, slots=True)
class Merged:
    """A pending first copy after a later copy was folded in (see NewEvent.merge)."""

    body: bytes  # the merged event, encoded with store.codec
    routes: Mapping[str, Route]  # destination -> its route of the merged event
    release: bool  # the later copy is the truth: send now, end a browser copy's hold


# The first copy's stored body -> the merge, or None when the later copy adds nothing.
MergeFn = Callable[[bytes], Merged | None]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to store, with one route per destination that considered it.

    `merge`, when given, folds this event into an earlier copy whose deliveries are still
    pending, instead of it being dropped as a duplicate. It runs inside the insert's
    transaction, so the first copy cannot be claimed half-merged.
    """

    event: Event
    routes: tuple[Route, ...]
    merge: MergeFn | None = None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    in_flight: int
    oldest_pending_at: float | None


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema; return in-flight rows to pending (crash recovery)."""
        ...

    async def close(self) -> None: ...

    async def insert(self, batch: Sequence[NewEvent], now: float) -> list[InsertOutcome]:
        """Commit every event and its routes in ONE transaction.

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
        """Return in-flight rows whose lease expired to pending."""
        ...

    async def expire(self, destination: str, accepted_before: float, now: float) -> int:
        """Mark pending deliveries accepted before the cut-off dead with reason 'expired'."""
        ...

    async def next_due(self, destination: str) -> float | None:
        """The earliest next_attempt_at of the destination's pending rows, or None."""
        ...

    async def queue_stats(self, destination: str) -> QueueStats: ...

    async def get_destination(self, name: str) -> DestinationState | None: ...

    async def set_destination(self, state: DestinationState) -> None: ...

    async def deliveries(self, event_id: str) -> list[DeliveryView]: ...

    # Admin sessions: keyed by a hash of the session id; the id itself is only in the cookie.

    async def open_admin_session(self, id_hash: str, now: float, expires_at: float) -> None:
        """Record a signed-in session (expired ones are pruned on the way)."""
        ...

    async def admin_session_valid(self, id_hash: str, now: float) -> bool:
        """True while the session is open and unexpired."""
        ...

    async def close_admin_session(self, id_hash: str) -> None:
        """End one session (sign-out); closing an unknown one is not an error."""
        ...
