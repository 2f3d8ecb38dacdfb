"""`pixelrelay replay`: put finished deliveries back in the queue with the same event_id."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pixelrelay.clock import Clock, SystemClock
from pixelrelay.config import Settings
from pixelrelay.destinations import build_destination
from pixelrelay.model import DeliveryState, Route
from pixelrelay.ops import OpsError
from pixelrelay.ops.attach import attach
from pixelrelay.ops.window import make_window
from pixelrelay.pipeline.parse import too_old
from pixelrelay.routing import route as route_event
from pixelrelay.store.base import IDEMPOTENCY_WINDOW_S, Store
from pixelrelay.store.codec import decode_event
from pixelrelay.store.rows import Candidate, ReplayFilter, Requeue

PAGE = 500
# pending and in_flight rows are still on their way: replay never touches them.
STATE_CHOICES: dict[str, tuple[DeliveryState, ...]] = {
    "dead": (DeliveryState.DEAD,),
    "all": (DeliveryState.DEAD, DeliveryState.DELIVERED, DeliveryState.FILTERED,
            DeliveryState.SUPPRESSED),
}


class Skip(StrEnum):
    TOO_OLD = "event_time past TikTok's window (max_age_days)"
    FILTERED = "excluded by the destination's current filters"
    SUPPRESSED = "consent denies forwarding"
    SUPERSEDED = "a later copy of the event holds its event_id"
    DELIVERED_LONG_AGO = "delivered over 48 h ago under the same name (TikTok would count it twice)"
    ALREADY_QUEUED = "already queued again meanwhile"


def decide(c: Candidate, event_time: int, route: Route, now: float,
           max_age_days: int) -> Skip | None:
    """Why this delivery must not be sent again, or None to re-queue it."""
    if c.superseded:
        return Skip.SUPERSEDED
    if too_old(event_time, now, max_age_days) is not None:
        return Skip.TOO_OLD
    if route.state is DeliveryState.FILTERED:
        return Skip.FILTERED
    if route.state is DeliveryState.SUPPRESSED:
        return Skip.SUPPRESSED
    # Within 48 h TikTok drops the repeat; after that only a new name makes it a new event.
    if c.state is DeliveryState.DELIVERED and route.dest_event == c.dest_event and (
            c.delivered_at is None or now - c.delivered_at >= IDEMPOTENCY_WINDOW_S):
        return Skip.DELIVERED_LONG_AGO
    return None


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    destination: str
    since: str | None = None
    until: str | None = None
    state: str = "dead"
    event: str | None = None
    dry_run: bool = False


@dataclass(slots=True)
class ReplaySummary:
    matched: int = 0
    requeued: int = 0
    renamed: int = 0  # re-queued under a different TikTok name than before (mapping fixed)
    skipped: Counter[Skip] = field(default_factory=Counter)
    paused_reason: str | None = None


async def replay(store: Store, settings: Settings, opts: ReplayOptions, clock: Clock,
                 advance: Callable[[int], None] = lambda n: None) -> ReplaySummary:
    now = clock.now()
    flt = _filter(settings, opts, now)
    dest_settings = settings.destination(opts.destination)
    dest = build_destination(dest_settings)
    summary = ReplaySummary()
    after = 0
    while True:
        page = await store.replay_candidates(flt, after, PAGE)
        if not page:
            break
        after = page[-1].delivery_id
        todo: list[Requeue] = []
        for c in page:
            event = decode_event(c.body)
            route = route_event(dest, event)
            skip = decide(c, event.event_time, route, now, dest_settings.max_age_days)
            if skip is not None:
                summary.skipped[skip] += 1
                continue
            assert route.payload is not None  # a pending route always carries its payload
            todo.append(Requeue(c.delivery_id, c.event_id, c.state, c.dest_event,
                                route.dest_event, route.batch_key, route.payload))
        summary.matched += len(page)
        summary.renamed += sum(1 for r in todo if r.dest_event != r.old_dest_event)
        if opts.dry_run and todo:
            taken = await store.count_requeue_conflicts(dest.name, todo, now)
            done = len(todo) - taken
        elif todo:
            done, taken = await store.requeue(dest.name, todo, now)
        else:
            done = taken = 0
        summary.requeued += done
        if taken:
            summary.skipped[Skip.ALREADY_QUEUED] += taken
        advance(len(page))
    state = await store.get_destination(dest.name)
    if state is not None and state.paused:
        summary.paused_reason = state.reason or "setup error"
    return summary


def _filter(settings: Settings, opts: ReplayOptions, now: float) -> ReplayFilter:
    names = [d.name for d in settings.destinations]
    if opts.destination not in names:
        raise OpsError("--destination", f"no destination named {opts.destination!r} "
                                        f"(configured: {', '.join(names) or 'none'})")
    if opts.state not in STATE_CHOICES:
        raise OpsError("--state", f"must be one of {', '.join(STATE_CHOICES)}")
    window = make_window(opts.since, opts.until, now)
    return ReplayFilter(opts.destination, STATE_CHOICES[opts.state], window.since,
                        window.until, opts.event)


def main(settings: Settings, opts: ReplayOptions, console: Console | None = None,
         clock: Clock | None = None) -> int:
    """The command: count, re-queue page by page under a progress bar, print a summary."""
    return asyncio.run(_main(settings, opts, console or Console(), clock or SystemClock()))


async def _main(settings: Settings, opts: ReplayOptions, console: Console, clock: Clock) -> int:
    flt = _filter(settings, opts, clock.now())
    store = await attach(settings)
    try:
        total = await store.count_replay_candidates(flt)
        verb = "counting" if opts.dry_run else "re-queueing"
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"{verb} {opts.destination}", total=total)
            summary = await replay(store, settings, opts, clock,
                                   lambda n: progress.advance(task, n))
    finally:
        await store.close()
    _render(console, opts, summary)
    return 0


def _render(console: Console, opts: ReplayOptions, s: ReplaySummary) -> None:
    title = f"replay {opts.destination} ({opts.state}{', dry run' if opts.dry_run else ''})"
    table = Table(title=title)
    table.add_column("deliveries")
    table.add_column("count", justify="right")
    table.add_row("matched", str(s.matched))
    table.add_row("would be re-queued" if opts.dry_run else "re-queued", str(s.requeued))
    if s.renamed:
        table.add_row("  of them under a new TikTok name", str(s.renamed))
    for skip in Skip:
        if s.skipped[skip]:
            table.add_row(f"skipped: {skip}", str(s.skipped[skip]))
    console.print(table)
    verb = "would re-queue" if opts.dry_run else "re-queued"
    console.print(f"{s.matched} matched, {verb} {s.requeued}, skipped "
                  f"{sum(s.skipped.values())}")
    old = s.skipped[Skip.TOO_OLD]
    if old:
        console.print(f"{old} event(s) skipped: older than the destination's max_age_days "
                      "window, TikTok would not attribute them.")
    if opts.dry_run:
        console.print("dry run: nothing was changed.")
    elif s.requeued:
        console.print("A running `pixelrelay serve` on this database sends them within about "
                      "a second; otherwise they go when it starts.")
    if s.paused_reason:
        console.print(f"[yellow]destination {opts.destination} is paused ({s.paused_reason}): "
                      "fix the token or permission, then resume it.[/yellow]")
