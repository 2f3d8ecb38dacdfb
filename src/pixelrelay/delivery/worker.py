"""The delivery loop of one destination: claim -> throttle -> plan -> send -> classify -> finish."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, replace

from pixelrelay import metrics
from pixelrelay.bursts import BurstLog
from pixelrelay.clock import Clock
from pixelrelay.config import DeliverySettings
from pixelrelay.delivery.planner import Batch, plan, split, still_suspect
from pixelrelay.delivery.retry import OutageWatch, RetryDraw, give_up_reason, next_streak
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.throttle import TokenBucket
from pixelrelay.destinations.base import Destination, HttpResponse, Outcome, OutcomeKind
from pixelrelay.errors import StoreUnavailable
from pixelrelay.model import DeliveryState
from pixelrelay.store.base import AttemptRecord, Claimed, DestinationState, Finished, Store

log = logging.getLogger("pixelrelay.delivery")

EXPIRE_EVERY_S = 5.0  # expiry is a range update; no need to run it on every cycle
REAP_EVERY_S = 10.0
IDLE_POLL_S = 1.0  # when idle, look for due retries (and rows of other processes) this often
# Requests in flight per cycle when a backlog waits: our claim/finish work overlaps TikTok's
# processing of the previous request instead of idling on it.
PARALLEL_REQUESTS = 4


@dataclass(frozen=True, slots=True)
class _Failed:
    """A request that failed transiently, to be finished by whoever knows whether its events
    may hold a refused one (the bisection, from the sibling half's answer)."""

    batch: Batch
    outcome: Outcome
    status: int | None
    message: str | None
    attempt: AttemptRecord
    at: float


class DeliveryWorker:
    """Delivers one destination's queue. Each destination gets its own worker task, so a slow
    or paused destination never holds up another."""

    def __init__(self, store: Store, destination: Destination, sender: Sender,
                 settings: DeliverySettings, clock: Clock, token_fingerprint: str,
                 rng: random.Random | None = None, throttle: TokenBucket | None = None,
                 outage: BurstLog | None = None) -> None:
        self.store = store
        self.destination = destination
        self.sender = sender
        self.settings = settings
        self.clock = clock
        self.token_fingerprint = token_fingerprint
        self.rng = rng or random.Random()
        self.throttle = throttle or TokenBucket(settings.max_qps)
        # Shared with the process's other store users (Delivery), so an outage is one line.
        self.outage = outage or BurstLog(log, "storage")
        self.paused = False
        self._wake = asyncio.Event()
        self._last_expire = float("-inf")
        self._last_reap = float("-inf")
        self._outage = OutageWatch(settings.retry_base_s, settings.retry_cap_s)
        self._go_again = False  # a drain just started: cycle again without idling

    @property
    def name(self) -> str:
        return self.destination.name

    def notify(self) -> None:
        """New pending rows were committed, or the pause was lifted: wake up (the batch gets
        flush_interval_s to fill)."""
        self._wake.set()

    async def _lift_pause(self) -> None:
        await self.store.set_destination(DestinationState(
            name=self.name, paused=False, updated_at=self.clock.now()))
        self.paused = False
        log.info("destination %s resumed", self.name)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                # After a full cycle a backlog waits: go again at once, else sleep till due.
                processed = await self.run_once()
                self.outage.recovered()
                if processed < self.destination.batch_size and not self._go_again:
                    await self._idle(stop)
                self._go_again = False
            except StoreUnavailable as exc:  # must not end delivery; the leases expire safely
                self.outage.failed(exc)
                await _wait_any([stop], IDLE_POLL_S)
            except Exception:  # a bug: its traceback, but delivery goes on
                log.exception("delivery cycle of %s failed", self.name)
                await _wait_any([stop], IDLE_POLL_S)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Sleep until a retry is due, rows arrive (from this process or another), a stop, or
        IDLE_POLL_S: the pause, set and lifted in the database, is read again after it."""
        timeout = IDLE_POLL_S
        if not self.paused:
            due = await self.store.next_due(self.name)
            if due is not None:
                timeout = min(timeout, max(0.0, due - self.clock.now()))
        if timeout <= 0:
            return
        if await self._wait_for_rows(stop, timeout):
            self._wake.clear()
            await _wait_any([stop], self.settings.flush_interval_s)  # let the batch fill

    async def _wait_for_rows(self, stop: asyncio.Event, timeout: float) -> bool:
        """Wait up to `timeout`; True when new rows were signalled before it ran out: by this
        process's ingest (notify) or by the store for another process's (wait_for_work)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        elsewhere = asyncio.ensure_future(self.store.wait_for_work([self.name], timeout))
        woken = [asyncio.ensure_future(e.wait()) for e in (self._wake, stop)]
        signalled = False
        try:
            done, _ = await asyncio.wait([elsewhere, *woken], timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if elsewhere in done:
                if elsewhere.exception() is None:
                    # It also returns when its timeout ends (SQLite only ever does): only an
                    # earlier return is a signal; the margin absorbs the timers' granularity.
                    signalled = loop.time() < deadline - 0.01
                else:  # no signal this time: poll, and keep the pace of a poll
                    log.warning("destination %s: waiting for new rows failed (%s); polling",
                                self.name, elsewhere.exception())
                    await asyncio.wait(woken, timeout=max(0.0, deadline - loop.time()),
                                       return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in (elsewhere, *woken):
                w.cancel()
        return not stop.is_set() and (self._wake.is_set() or signalled)

    async def run_once(self) -> int:
        """One claim -> send -> finish cycle; returns the number of deliveries processed."""
        now = self.clock.now()
        await self._maintain(now)
        if await self._check_paused():
            return 0
        size = self.destination.batch_size
        drain_before = self._outage.drain_before(now)
        sending: list[asyncio.Task[None]] = []
        processed = 0
        try:
            for _ in range(PARALLEL_REQUESTS):
                # Each claim runs while the previous batch is already on the wire. A claim
                # holds one batch_key; a short one only means that key has no more due rows.
                claimed = await self.store.claim(self.name, size, now, self.settings.lease_s,
                                                 retry_before=drain_before)
                if not claimed:
                    break
                processed += len(claimed)
                live = await self._drop_given_up(claimed, now)
                draw = RetryDraw(self.settings, self.rng)  # one per claim: see RetryDraw
                sending += [asyncio.create_task(self._deliver(b, draw))
                            for b in plan(live, size)]
        finally:
            await asyncio.gather(*sending)
        return processed

    async def _drop_given_up(self, claimed: list[Claimed], now: float) -> list[Claimed]:
        """Rows that aged out (or outlived changed limits) while waiting are dead, not sent."""
        live: list[Claimed] = []
        stale: list[Finished] = []
        dropped: list[Claimed] = []
        for c in claimed:
            reason = give_up_reason(c.attempts, c.created_at, now, self.settings)
            if reason is None:
                live.append(c)
            else:
                dropped.append(c)
                stale.append(Finished(c.delivery_id, c.lease_token, DeliveryState.DEAD,
                                      dead_reason=reason))
        if stale:
            await self.store.finish(stale, None, now)
            metrics.record_results(self.name, dropped, stale, now)
        return live

    async def _maintain(self, now: float) -> None:
        if now - self._last_expire >= EXPIRE_EVERY_S:
            self._last_expire = now
            cutoff = now - self.settings.max_age_hours * 3600.0
            expired = await self.store.expire(self.name, cutoff, now)
            if expired:
                log.warning("destination %s: %d undelivered events expired (older than %g h)",
                            self.name, expired, self.settings.max_age_hours)
        if now - self._last_reap >= REAP_EVERY_S:
            self._last_reap = now
            reaped = await self.store.reap_leases(now)
            if reaped:
                log.warning("%d expired delivery leases returned to the queue", reaped)

    async def _check_paused(self) -> bool:
        """The pause as the database has it: set by any delivery process, lifted by a resume
        on any API process, or here when this process runs with a different token."""
        state = await self.store.get_destination(self.name)
        if state is None or not state.paused:
            if self.paused:
                log.info("destination %s resumed", self.name)
            self.paused = False
            return False
        if state.token_fingerprint != self.token_fingerprint:
            log.info("destination %s: the access token changed since the pause", self.name)
            await self._lift_pause()
            return False
        self.paused = True
        return True

    # -- one request ---------------------------------------------------------------------------

    async def _deliver(self, batch: Batch, draw: RetryDraw) -> None:
        """One planned request; a suspect one is bisected without being sent whole again."""
        if batch.suspect and len(batch) > 1:
            await self._bisect(batch, draw)
            return
        _kind, failed = await self._request(batch, draw)
        if failed is not None:
            await self._retry_later(failed, batch.suspect, draw)

    async def _bisect(self, batch: Batch, draw: RetryDraw) -> None:
        """Send both halves at once. A half that failed transiently is finished once its
        sibling has answered: that answer says whether it may hold the refused event."""
        halves = split(batch)
        sent = await asyncio.gather(*(self._request(half, draw) for half in halves))
        for (_kind, failed), (sibling, _) in zip(sent, reversed(sent), strict=True):
            if failed is not None:
                await self._retry_later(failed, still_suspect(sibling), draw)

    async def _request(self, batch: Batch,
                       draw: RetryDraw) -> tuple[OutcomeKind | None, _Failed | None]:
        """Send one request and settle what its answer settles. Returns the answer's kind
        (None: not sent) and, for a transient failure, what the caller must finish."""
        if self.paused:  # a sibling request was refused for setup: keep the rest queued
            await self._requeue(batch, "destination paused")
            return None, None
        await self.throttle.acquire()
        request = self.destination.build_request(batch.batch_key,
                                                 [c.payload for c in batch.items])
        sent_at = self.clock.now()
        response = await self.sender.send(request)
        outcome = self.destination.classify(response)
        now = self.clock.now()
        message = outcome.message or response.error
        self._log(batch, response, outcome, message)
        metrics.count_response(self.name, metrics.code_label(outcome.code, response.status))
        attempt = AttemptRecord(
            destination=self.name, event_ids=tuple(c.event_id for c in batch.items),
            http_status=response.status, code=outcome.code, message=message,
            request_id=outcome.request_id, latency_ms=response.latency_ms,
            outcome=str(outcome.kind), at=now)

        if outcome.kind is OutcomeKind.SETUP:
            await self._pause(outcome, now)
            await self.store.finish([], attempt, now)
            await self._requeue(batch, f"destination paused: {_reason(outcome)}")
            return outcome.kind, None
        if outcome.kind is OutcomeKind.RETRY:
            self._outage.failed(sent_at)
            return outcome.kind, _Failed(batch, outcome, response.status, message, attempt,
                                         now)
        if outcome.kind is OutcomeKind.PERMANENT and len(batch) > 1:
            # Which event was refused is unknown: send the halves at once until it stands
            # alone. The split is logged but is no attempt of these events (no result is
            # written); TikTok answered, so their retry streaks end (next_streak).
            await self.store.finish([], attempt, now)
            answered = tuple(replace(c, retry_streak=next_streak(outcome.kind, c.retry_streak))
                             for c in batch.items)
            await self._bisect(Batch(batch.batch_key, answered, suspect=True), draw)
            return outcome.kind, None

        results = [self._result(c, outcome, response.status, message, now, now)
                   for c in batch.items]
        await self.store.finish(results, attempt, now)
        metrics.record_results(self.name, batch.items, results, now)
        if outcome.kind is OutcomeKind.DELIVERED:
            down_s = self._outage.succeeded(sent_at, now)
            if down_s is not None:
                # What waits on a retry scheduled before now goes at once, in full batches,
                # instead of trickling in over the backoff window; later retries keep their
                # backoff, and every request still waits for the throttle.
                self._go_again = True
                log.info("destination %s answers again after %.1f s of failures: sending "
                         "its backlog now", self.name, down_s)
        return outcome.kind, None

    async def _retry_later(self, failed: _Failed, suspect: bool, draw: RetryDraw) -> None:
        """Finish a transiently failed request: its events retry together, after a backoff
        that follows their own transient failures."""
        items = failed.batch.items
        retry_at = draw.retry_at([c.retry_streak for c in items], failed.at)
        results = [self._result(c, failed.outcome, failed.status, failed.message, failed.at,
                                retry_at, suspect) for c in items]
        await self.store.finish(results, failed.attempt, failed.at)
        metrics.record_results(self.name, items, results, failed.at)

    def _result(self, c: Claimed, outcome: Outcome, status: int | None, message: str | None,
                now: float, retry_at: float, suspect: bool = False) -> Finished:
        # One constructor call per row (no dataclasses.replace): a drain finishes 1,000 a request.
        state, due, dead_reason = DeliveryState.DEAD, None, None
        if outcome.kind is OutcomeKind.DELIVERED:
            state = DeliveryState.DELIVERED
        elif outcome.kind is OutcomeKind.PERMANENT:
            dead_reason = "rejected"
        else:
            dead_reason = give_up_reason(c.attempts + 1, c.created_at, now, self.settings)
            if dead_reason is None:
                state, due = DeliveryState.PENDING, retry_at
        return Finished(c.delivery_id, c.lease_token, state, next_attempt_at=due,
                        http_status=status, code=outcome.code, message=message,
                        request_id=outcome.request_id, dead_reason=dead_reason,
                        retry_streak=next_streak(outcome.kind, c.retry_streak),
                        suspect=suspect and state is DeliveryState.PENDING)

    async def _requeue(self, batch: Batch, note: str) -> None:
        """Back to pending, due now, without spending an attempt (no status, no code)."""
        now = self.clock.now()
        await self.store.finish([Finished(c.delivery_id, c.lease_token, DeliveryState.PENDING,
                                          next_attempt_at=now, message=note)
                                 for c in batch.items], None, now)

    async def _pause(self, outcome: Outcome, now: float) -> None:
        self.paused = True
        reason = _reason(outcome)
        await self.store.set_destination(DestinationState(
            name=self.name, paused=True, reason=reason,
            token_fingerprint=self.token_fingerprint, updated_at=now))
        log.error("destination %s paused: %s (its queue waits; fix the token or permission, "
                  "then resume)", self.name, reason)

    def _log(self, batch: Batch, response: HttpResponse, outcome: Outcome,
             message: str | None) -> None:
        # Never the payload or the headers: they hold match keys and the access token.
        level = logging.INFO if outcome.kind is OutcomeKind.DELIVERED else logging.WARNING
        log.log(level, "attempt destination=%s events=%d status=%s code=%s message=%r "
                "request_id=%s latency_ms=%.1f outcome=%s", self.name, len(batch),
                response.status, outcome.code, message, outcome.request_id,
                response.latency_ms, outcome.kind)


def _reason(outcome: Outcome) -> str:
    return " ".join(str(x) for x in (outcome.code, outcome.message) if x is not None) or "setup"


async def _wait_any(events: list[asyncio.Event], timeout: float) -> bool:
    """Wait until one of `events` is set or `timeout` passes; True if one was set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return bool(done)
