"""Batch planning, pure: claimed rows -> requests of one batch_key each; halves for bisection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pixelrelay.destinations.base import OutcomeKind
from pixelrelay.store.base import Claimed


@dataclass(frozen=True, slots=True)
class Batch:
    """Deliveries that travel in one request: they share a batch_key (TikTok: event_source).

    suspect: TikTok refused these events together and the refused one is not isolated yet;
    such a batch is split before it is sent (sent whole it would only be refused again)."""

    batch_key: str
    items: tuple[Claimed, ...]
    suspect: bool = False

    def __len__(self) -> int:
        return len(self.items)


def plan(claimed: Sequence[Claimed], batch_size: int) -> list[Batch]:
    """Group by batch_key (first-seen order, claim order kept) into batches of <= batch_size;
    suspect rows travel apart, so events never refused do not meet the refused one again."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    groups: dict[tuple[str, bool], list[Claimed]] = {}
    for c in claimed:
        groups.setdefault((c.batch_key, c.suspect), []).append(c)
    return [Batch(key, tuple(items[i:i + batch_size]), suspect)
            for (key, suspect), items in groups.items()
            for i in range(0, len(items), batch_size)]


def split(batch: Batch) -> tuple[Batch, Batch]:
    """Two halves (the first gets the smaller half when odd), to isolate a rejected event."""
    if len(batch.items) < 2:
        raise ValueError("cannot split a batch of fewer than 2 events")
    mid = len(batch.items) // 2
    return (Batch(batch.batch_key, batch.items[:mid], suspect=True),
            Batch(batch.batch_key, batch.items[mid:], suspect=True))


def still_suspect(sibling: OutcomeKind | None) -> bool:
    """Whether a half that failed transiently may hold the refused event, given what its
    sibling half got (None: it was not sent). Only a refused sibling shows the refusal to be
    elsewhere; then this half retries as ordinary rows, in one request."""
    return sibling is not OutcomeKind.PERMANENT
