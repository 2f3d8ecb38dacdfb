"""The delivery side of a process: a worker per destination, and its share of each rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpx

from pixelrelay.bursts import BurstLog
from pixelrelay.clock import Clock
from pixelrelay.config import Settings
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.worker import DeliveryWorker
from pixelrelay.destinations.base import Destination
from pixelrelay.errors import StoreUnavailable
from pixelrelay.store.base import Store
from pixelrelay.store.rollup import ROLL_UP_BATCH

log = logging.getLogger("pixelrelay.delivery")

ROLE = "delivery"
HEARTBEAT_S = 5.0  # how often this process says it is alive and re-reads how many others are
# A process silent this long is counted out: three missed beats (a kill -9, a lost machine).
HEARTBEAT_TTL_S = 3 * HEARTBEAT_S
STOP_WAIT_S = 10.0  # a stopping worker finishes its requests in flight, at most this long
RETAIN_EVERY_S = 60.0  # retention: how often finished rows past storage.retention_days go
RETAIN_BATCH = 1000  # rows per table per prune call: short transactions, no long locks
ROLL_UP_EVERY_S = 30.0  # the page scans at most this much more than the unsettled tail
RETAIN_PASSES = 50  # prune calls per round at most; a backlog shrinks over several rounds


def rate_share(max_qps: float, live_processes: int) -> float:
    """One delivery process's part of a destination's max_qps (<= 0: unlimited stays so)."""
    if max_qps <= 0:
        return max_qps
    return max_qps / max(1, live_processes)


class Delivery:
    """Delivers every destination's queue from this process, beside any other delivery
    process on the same database.

    Each destination has its own worker task, Sender (HTTP pool) and throttle, so a slow or
    failing destination holds none of another's. The per-destination max_qps is a budget for
    all delivery processes together: each takes max_qps / (live delivery processes), counted
    by a heartbeat in the database every HEARTBEAT_S.
    """

    def __init__(self, settings: Settings, store: Store, destinations: Sequence[Destination],
                 clock: Clock, transport: httpx.AsyncBaseTransport | None = None,
                 outage: BurstLog | None = None) -> None:
        self.store = store
        # Every task here (workers, heartbeat, retention, roll-up) meets the same outage:
        # one warning when it starts, one line when it ends, however many cycles fail.
        self.outage = outage or BurstLog(log, "storage")
        self.clock = clock
        self.retention_s = settings.storage.retention_s
        self.retained = 0  # rows deleted by retention since start (tests, logs)
        self.rolled_up = 0  # diagnostics minutes stored since start (tests)
        self.max_qps = settings.delivery.max_qps
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.live_processes = 1
        self.senders = {d.name: Sender(settings.delivery, transport=transport)
                        for d in destinations}
        self.workers = {
            d.name: DeliveryWorker(store, d, self.senders[d.name], settings.delivery, clock,
                                   token_fingerprint=settings.destination(d.name)
                                   .access_token.fingerprint(), outage=self.outage)
            for d in destinations
        }
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def notify(self, names: Iterable[str]) -> None:
        """Rows for these destinations were committed by this process: wake their workers."""
        for name in names:
            worker = self.workers.get(name)
            if worker is not None:
                worker.notify()

    async def beat(self) -> int:
        """Say this process is alive; set each throttle to its share of max_qps. Returns the
        live delivery processes counted (this one included)."""
        live = await self.store.heartbeat(self.process_id, ROLE, self.clock.now(),
                                          HEARTBEAT_TTL_S)
        if live != self.live_processes:
            log.info("%d delivery process(es) share each destination's max_qps", live)
        self.live_processes = live
        for worker in self.workers.values():
            worker.throttle.set_rate(rate_share(self.max_qps, live))
        return live

    async def start(self) -> None:
        """Start delivering (the store is open). The first beat comes before any request, so
        a process joining others never sends at the full rate."""
        await self.beat()
        self._stop.clear()
        self._tasks = [asyncio.create_task(w.run(self._stop), name=f"delivery:{n}")
                       for n, w in self.workers.items()]
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="delivery-heartbeat"))
        # A store hiccup in either: the next round does what this one left (meanwhile the
        # page scans what is not stored).
        self._tasks.append(asyncio.create_task(
            self._every(RETAIN_EVERY_S, self.retain, "retention"), name="delivery-retention"))
        self._tasks.append(asyncio.create_task(
            self._every(ROLL_UP_EVERY_S, self.roll_up, "diagnostics roll-up"),
            name="diagnostics-roll-up"))

    async def retain(self) -> int:
        """Delete what is past the retention, a batch at a time; returns the rows deleted.
        Every delivery process does it: the store's batches skip each other's rows."""
        total = 0
        for _ in range(RETAIN_PASSES):
            pruned = await self.store.prune(self.clock.now(), self.retention_s, RETAIN_BATCH)
            total += pruned.total
            if max(pruned.deliveries, pruned.events, pruned.attempts) < RETAIN_BATCH:
                break
        if total:
            log.info("retention: %d rows older than %.0f days deleted", total,
                     self.retention_s / 86400)
        self.retained += total
        return total

    async def roll_up(self) -> int:
        """Store the diagnostics' settled minutes that are missing or dirty (store.roll_up),
        so the page sums them instead of scanning its window; returns the minutes computed."""
        total = 0
        while (n := await self.store.roll_up(self.clock.now(), ROLL_UP_BATCH)) > 0:
            total += n
            if n < ROLL_UP_BATCH:
                break
        self.rolled_up += total
        return total

    async def _every(self, seconds: float, job: Callable[[], Awaitable[int]],
                     what: str) -> None:
        """Run `job` now and then every `seconds` until stop, logging a failure and going on."""
        while not self._stop.is_set():
            try:
                await job()
                self.outage.recovered()
            except StoreUnavailable as exc:
                self.outage.failed(exc)
            except Exception:
                log.exception("%s failed", what)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HEARTBEAT_S)
            if self._stop.is_set():
                return
            try:
                await self.beat()
                self.outage.recovered()
            except StoreUnavailable as exc:  # keeps the last share; the next beat retries
                self.outage.failed(exc)
            except Exception:
                log.exception("delivery heartbeat failed")

    async def stop(self) -> None:
        """Finish what is in flight (up to STOP_WAIT_S), hand this share back, close pools."""
        self._stop.set()
        for w in self.workers.values():
            w.notify()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        try:
            await self.store.leave(self.process_id)
        except Exception:  # the others count this process out after HEARTBEAT_TTL_S anyway
            log.warning("could not sign this delivery process out of the database")
        for sender in self.senders.values():
            await sender.close()
