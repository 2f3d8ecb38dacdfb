"""MetaEmulator: answers POST /{version}/{pixel_id}/events as Meta does and records what it took."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from pixelrelay.clock import Clock, SystemClock
from pixelrelay.emulator.faults import FaultDice
from pixelrelay.emulator.meta import graph as g
from pixelrelay.emulator.meta.contract import judge
from pixelrelay.emulator.meta.faults import MetaFaults
from pixelrelay.emulator.meta.wire import Params, find_token, read_params

DEDUP_WINDOW_S = 48 * 3600
HANG_POLL_S = 0.05  # how soon a held request notices that the hang fault was lifted
_TRACE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_HTML_503 = b"<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>"


@dataclass(slots=True)
class MetaRequestLog:
    """One request to the events edge and how it was answered."""

    http_status: int
    fbtrace_id: str
    api_version: str
    pixel_id: str
    received_at: float
    code: int | None = None  # the Graph error code; None for a success or an HTML 5xx
    error_subcode: int | None = None
    message: str = ""
    token_in: str | None = None  # query, body or bearer
    encoding: str = "none"  # json, form, multipart or none
    test_event_code: str | None = None
    partner_agent: str | None = None
    n_events: int = 0
    events_received: int = 0
    recorded: int = 0
    duplicates: int = 0
    latency: float = 0.0
    errors: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Reply:
    http_status: int
    body: bytes
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


class MetaEmulator:
    """Meta's Conversions API as an independent judge.

    Requests are handled on one event loop; reading `events`, `requests` and `stats()` from
    another thread (a test polling a server thread) is safe.
    """

    def __init__(
        self,
        access_tokens: Iterable[str] = (),
        pixel_ids: Iterable[str] = (),
        clock: Clock | None = None,
        seed: int = 0,
        api_versions: Iterable[str] = g.SERVED_VERSIONS,
    ) -> None:
        self.access_tokens = frozenset(access_tokens)  # empty: any non-empty token is valid
        self.pixel_ids = frozenset(pixel_ids)  # empty: any numeric id is a pixel
        self.api_versions = frozenset(api_versions)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.faults = MetaFaults()
        self._dice = FaultDice(seed)
        self._trace_rng = random.Random(seed)
        self._seq = 0  # survives reset(): fbtrace ids never repeat within one process
        self.hanging = 0
        self.in_flight = 0
        self.requests: list[MetaRequestLog] = []
        self.duplicates = 0
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._first_seen: dict[str, float] = {}
        self._expiry: deque[tuple[float, str]] = deque()

    def reset(self) -> None:
        """Forget events, requests and dedup keys; restore default faults and the seed."""
        with self._lock:
            self._events = []
            self.requests = []
        self.duplicates = 0
        self._first_seen.clear()
        self._expiry.clear()
        # In place: code holding `emu.faults` keeps steering the same object after a reset.
        self.faults.update(MetaFaults().to_dict())
        self._dice.reseed()

    # --- queries -------------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every accepted, non-duplicate event: data[i] plus "_"-prefixed request keys."""
        with self._lock:
            return list(self._events)

    def find_events(
        self,
        pixel_id: str | None = None,
        event_name: str | None = None,
        event_id: str | None = None,
        test_event_code: str | None = None,
    ) -> list[dict[str, Any]]:
        return [
            ev for ev in self.events
            if (pixel_id is None or ev["_pixel_id"] == pixel_id)
            and (event_name is None or ev.get("event_name") == event_name)
            and (event_id is None or ev.get("event_id") == event_id)
            and (test_event_code is None or ev["_test_event_code"] == test_event_code)
        ]

    def stats(self) -> dict[str, Any]:
        requests = list(self.requests)
        by_code = Counter("none" if r.code is None else str(r.code) for r in requests)
        by_status = Counter(str(r.http_status) for r in requests)
        return {
            "requests": len(requests),
            "events": len(self._events),
            "duplicates": self.duplicates,
            "hanging": self.hanging,
            "in_flight": self.in_flight,
            "by_code": dict(by_code),
            "by_http_status": dict(by_status),
        }

    # --- the events edge -----------------------------------------------------------------

    async def handle_events(
        self,
        api_version: str,
        pixel_id: str,
        query: str,
        authorization: str | None,
        content_type: str | None,
        raw: bytes,
    ) -> Reply:
        """Answer one POST /{api_version}/{pixel_id}/events the way Meta would."""
        self.in_flight += 1
        try:
            return await self._handle(api_version, pixel_id, query, authorization, content_type,
                                      raw)
        finally:
            self.in_flight -= 1

    async def _handle(
        self,
        api_version: str,
        pixel_id: str,
        query: str,
        authorization: str | None,
        content_type: str | None,
        raw: bytes,
    ) -> Reply:
        started = time.perf_counter()
        log = MetaRequestLog(200, self._next_trace_id(), api_version, pixel_id, self.clock.now())
        faults = self.faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        if faults.hang:
            await self._hold()
            log.http_status, log.message = 503, "injected hang, let go unanswered"
            return self._finish(log, started, Reply(503, _HTML_503, "text/html"))
        if self._dice.roll(faults.http_5xx_rate):
            log.http_status, log.message = 503, "injected HTTP 5xx"
            return self._finish(log, started, Reply(503, _HTML_503, "text/html"))
        params = read_params(content_type, raw, query)
        log.encoding = params.encoding
        tec = params.values.get("test_event_code")
        log.test_event_code = tec if type(tec) is str else None
        agent = params.values.get("partner_agent")
        log.partner_agent = agent if type(agent) is str else None
        error = self._answer(params, authorization, log)
        if error is not None:
            log.http_status, log.code = error.http_status, error.code
            log.error_subcode, log.message = error.subcode, error.message
            headers = {"x-fb-trace-id": log.fbtrace_id}
            if error.code in (g.TOKEN_INVALID, g.TOKEN_MISSING.code):
                headers["www-authenticate"] = (
                    f'OAuth "Facebook Platform" "invalid_token" "{error.message}"'
                )
            body = orjson.dumps(error.body(log.fbtrace_id))
            return self._finish(log, started, Reply(error.http_status, body, headers=headers))
        answer = {"events_received": log.events_received, "messages": [],
                  "fbtrace_id": log.fbtrace_id}
        headers = {"x-fb-trace-id": log.fbtrace_id, "facebook-api-version": api_version}
        return self._finish(log, started, Reply(200, orjson.dumps(answer), headers=headers))

    def _answer(
        self, params: Params, authorization: str | None, log: MetaRequestLog
    ) -> g.GraphError | None:
        faults = self.faults
        if log.api_version not in self.api_versions:
            version = log.api_version
            if version.startswith("v") and version[1:].replace(".", "", 1).isdigit():
                return g.INJECTABLE[2635]
            return g.unknown_path(f"{version}/{log.pixel_id}/events")
        token, log.token_in = find_token(params, authorization)
        if token is None:
            return g.TOKEN_MISSING
        if token in faults.revoked_tokens:
            return g.TOKEN_REVOKED
        if self.access_tokens and token not in self.access_tokens:
            return g.TOKEN_UNKNOWN
        if faults.setup_error_code is not None:
            return g.INJECTABLE[faults.setup_error_code]
        # Throttling and downtime come before any look at the payload.
        if self._dice.roll(faults.rate_limit_rate):
            return g.INJECTABLE[faults.rate_limit_code]
        if self._dice.roll(faults.transient_rate):
            return g.INJECTABLE[2]
        if self._dice.roll(faults.unknown_error_rate):
            return g.INJECTABLE[1]
        pixel = log.pixel_id
        if not pixel.isdigit() or (self.pixel_ids and pixel not in self.pixel_ids):
            return g.no_such_object(pixel)
        if params.error is not None:
            log.errors = [params.error]
            return g.param_error(params.error)
        verdict = judge(params.values, log.received_at)
        log.n_events = len(verdict.events)
        log.errors, log.notices = verdict.errors, verdict.notices
        error = verdict.error
        if error is not None:
            return error
        if faults.reject_event is not None:
            for i, ev in enumerate(verdict.events):
                if ev["event_name"] == faults.reject_event:
                    return g.event_error(
                        g.SUBCODE_FIELD, f"data.{i}.event_name: Invalid value (rejected by fault)"
                    )
        self._record(verdict.events, log)
        return None

    def _record(self, events: list[dict[str, Any]], log: MetaRequestLog) -> None:
        now = log.received_at
        self._expire(now)
        kept: list[dict[str, Any]] = []
        for ev in events:
            event_id = ev.get("event_id")
            if event_id is not None:
                key = f"{log.pixel_id}\x1f{ev['event_name']}\x1f{event_id}"
                seen = self._first_seen.get(key)
                if seen is not None and now - seen < DEDUP_WINDOW_S:
                    # Meta counts it in events_received and keeps only the first (§3).
                    log.duplicates += 1
                    continue
                self._first_seen[key] = now  # the window counts from the first copy
                self._expiry.append((now, key))
            ev.update({
                "_pixel_id": log.pixel_id,
                "_api_version": log.api_version,
                "_test_event_code": log.test_event_code,
                "_fbtrace_id": log.fbtrace_id,
                "_received_at": now,
            })
            kept.append(ev)
        log.events_received = len(events)
        log.recorded = len(kept)
        self.duplicates += log.duplicates
        with self._lock:
            self._events.extend(kept)

    def _expire(self, now: float) -> None:
        expiry, first_seen = self._expiry, self._first_seen
        while expiry and now - expiry[0][0] >= DEDUP_WINDOW_S:
            at, key = expiry.popleft()
            if first_seen.get(key) == at:  # re-accepted later: a newer entry stays
                del first_seen[key]

    async def _hold(self) -> None:
        """Never answer while the hang fault is on; polled, as tests flip it from any thread."""
        self.hanging += 1
        try:
            while self.faults.hang:
                await asyncio.sleep(HANG_POLL_S)
        finally:
            self.hanging -= 1

    def _finish(self, log: MetaRequestLog, started: float, reply: Reply) -> Reply:
        log.latency = time.perf_counter() - started
        with self._lock:
            self.requests.append(log)
        return reply

    def _next_trace_id(self) -> str:
        # Shaped like Meta's (23 url-safe characters); the sequence keeps them unique.
        self._seq += 1
        tail = "".join(self._trace_rng.choice(_TRACE_ALPHABET) for _ in range(15))
        return f"A{self._seq:07d}{tail}"
