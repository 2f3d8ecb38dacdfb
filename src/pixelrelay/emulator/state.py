"""The Emulator: answers track requests like TikTok and records what it accepted."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pixelrelay.clock import Clock, SystemClock
from pixelrelay.emulator import contract as c
from pixelrelay.emulator.faults import FaultDice, Faults

DEDUP_WINDOW_S = 48 * 3600
HTTP_5XX_STATUS = 503
HANG_POLL_S = 0.05  # how soon a held request notices that the hang fault was lifted


@dataclass(slots=True)
class RequestLog:
    """One request to the track endpoint and how it was answered."""

    http_status: int
    code: int | None  # None when no envelope was sent (injected HTTP 5xx)
    message: str
    request_id: str
    n_events: int
    latency: float  # seconds spent answering, injected latency included
    received_at: float = 0.0
    pixel_code: str | None = None
    test_event_code: str | None = None
    recorded: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class TrackReply:
    http_status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(slots=True)
class _Accepted:
    raw: bytes
    meta: dict[str, Any]
    keep: list[int] | None  # indices of the non-duplicate events; None means all of them


class Emulator:
    """TikTok's /event/track/ as an independent judge.

    Requests are handled on one event loop; reading `events`, `requests` and `stats()` from
    another thread (a test polling a server thread) is safe.
    """

    def __init__(
        self,
        access_tokens: Iterable[str] = (),
        pixel_codes: Iterable[str] = (),
        clock: Clock | None = None,
        seed: int = 0,
    ) -> None:
        self.access_tokens = frozenset(access_tokens)  # empty: any non-empty token is valid
        self.pixel_codes = frozenset(pixel_codes)  # empty: any pixel is accepted
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.faults = Faults()
        self._dice = FaultDice(seed)
        # Survives reset() so request ids never repeat within one process.
        self._seq = 0
        self.hanging = 0  # requests held unanswered right now (the hang fault)
        self.in_flight = 0  # requests read and not yet answered (latency, hang)
        self.requests: list[RequestLog] = []
        self.duplicates = 0
        self._events: list[dict[str, Any]] = []
        # Accepted requests kept as raw bytes until someone reads `events`: holding millions
        # of parsed dicts makes the garbage collector rescan them and halves throughput.
        self._pending: list[_Accepted] = []
        self._lock = threading.Lock()
        self._n_events = 0
        self._first_seen: dict[str, float] = {}
        self._expiry: deque[tuple[float, str]] = deque()

    def reset(self) -> None:
        """Forget events, requests and dedup keys; restore default faults and the seed."""
        with self._lock:
            self._events = []
            self._pending = []
        self._n_events = 0
        self.requests = []
        self.duplicates = 0
        self._first_seen.clear()
        self._expiry.clear()
        # In place: code holding `emu.faults` keeps steering the same object after a reset.
        self.faults.update(Faults().to_dict())
        self._dice.reseed()

    # --- queries -------------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every accepted, non-duplicate event: data[i] plus the "_"-prefixed request keys."""
        # Tests poll this from their own thread while uvicorn's thread records: take the lock.
        with self._lock:
            for acc in self._pending:
                data = orjson.loads(acc.raw)["data"]
                chosen = data if acc.keep is None else [data[i] for i in acc.keep]
                for ev in chosen:
                    ev.update(acc.meta)
                self._events.extend(chosen)
            self._pending.clear()
            return self._events

    def find_events(
        self,
        pixel_code: str | None = None,
        event: str | None = None,
        event_id: str | None = None,
        test_event_code: str | None = None,
    ) -> list[dict[str, Any]]:
        out = []
        for ev in self.events:
            if pixel_code is not None and ev["_pixel_code"] != pixel_code:
                continue
            if event is not None and ev.get("event") != event:
                continue
            if event_id is not None and ev.get("event_id") != event_id:
                continue
            if test_event_code is not None and ev["_test_event_code"] != test_event_code:
                continue
            out.append(ev)
        return out

    def stats(self) -> dict[str, Any]:
        by_code = Counter("none" if r.code is None else str(r.code) for r in self.requests)
        by_status = Counter(str(r.http_status) for r in self.requests)
        return {
            "requests": len(self.requests),
            "events": self._n_events,
            "duplicates": self.duplicates,
            "hanging": self.hanging,
            "in_flight": self.in_flight,
            "by_code": dict(by_code),
            "by_http_status": dict(by_status),
        }

    # --- the track endpoint --------------------------------------------------------------

    async def handle_track(
        self, access_token: str | None, content_type: str | None, raw: bytes
    ) -> TrackReply:
        """Answer one POST /open_api/v1.3/event/track/ the way TikTok would."""
        self.in_flight += 1
        try:
            return await self._handle_track(access_token, content_type, raw)
        finally:
            self.in_flight -= 1

    async def _handle_track(
        self, access_token: str | None, content_type: str | None, raw: bytes
    ) -> TrackReply:
        started = time.perf_counter()
        received_at = self.clock.now()
        request_id = self._next_request_id(received_at)
        faults = self.faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        log = RequestLog(200, None, "", request_id, 0, 0.0, received_at)
        if faults.hang:
            await self._hold()
            log.http_status, log.message = HTTP_5XX_STATUS, "injected hang, let go unanswered"
            return self._finish(
                log, started, TrackReply(HTTP_5XX_STATUS, b"Service Unavailable", "text/plain")
            )
        if self._dice.roll(faults.http_5xx_rate):
            log.http_status, log.message = HTTP_5XX_STATUS, "injected HTTP 5xx"
            return self._finish(
                log, started, TrackReply(HTTP_5XX_STATUS, b"Service Unavailable", "text/plain")
            )
        body: Any = None
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(raw)
        if type(body) is dict:
            self._describe(log, body)
        code, message = self._answer(faults, access_token, content_type, raw, body, log)
        log.code, log.message = code, message
        envelope = {"code": code, "message": message, "request_id": request_id, "data": {}}
        return self._finish(log, started, TrackReply(200, orjson.dumps(envelope)))

    async def _hold(self) -> None:
        """Never answer while the hang fault is on; polled, as tests flip it from any thread."""
        self.hanging += 1
        try:
            while self.faults.hang:
                await asyncio.sleep(HANG_POLL_S)
        finally:
            self.hanging -= 1

    def _answer(
        self,
        faults: Faults,
        access_token: str | None,
        content_type: str | None,
        raw: bytes,
        body: Any,
        log: RequestLog,
    ) -> tuple[int, str]:
        if faults.setup_error_code is not None:
            return faults.setup_error_code, _setup_message(faults.setup_error_code, log.pixel_code)
        bad_token = c.check_access_token(access_token, self.access_tokens)
        if bad_token is not None:
            return bad_token
        # Throttling and server errors come before any look at the payload, as at TikTok.
        if self._dice.roll(faults.code_40100_rate):
            return c.RATE_LIMITED, c.MSG_RATE_LIMITED
        if self._dice.roll(faults.code_50000_rate):
            return c.SYSTEM_ERROR, c.MSG_SYSTEM_ERROR
        if not c.is_json_content_type(content_type):
            return c.PARAM_ERROR, "Content-Type: must be application/json"
        if body is None and raw.strip() != b"null":
            return c.PARAM_ERROR, "body: Invalid JSON"
        pixel = log.pixel_code
        if pixel and self.pixel_codes and pixel not in self.pixel_codes:
            return c.NO_PERMISSION, c.no_permission_message(pixel)
        errors = c.validate_request(body)
        if errors:
            log.errors = errors
            return c.PARAM_ERROR, errors[0]
        data: list[dict[str, Any]] = body["data"]
        if faults.reject_event is not None:
            for i, ev in enumerate(data):
                if ev["event"] == faults.reject_event:
                    return c.PARAM_ERROR, f"data.{i}.event: Invalid value (rejected by fault)"
        self._record(raw, body, data, log)
        return c.OK, "OK"

    def _record(
        self, raw: bytes, body: dict[str, Any], data: list[dict[str, Any]], log: RequestLog
    ) -> None:
        now = log.received_at
        self._expire(now)
        source_id: str = body["event_source_id"]
        first_seen, expiry = self._first_seen, self._expiry
        keep: list[int] = []
        for i, ev in enumerate(data):
            event_id = ev.get("event_id")
            if event_id is not None:
                # One string key instead of a tuple: strings are invisible to the GC.
                key = f"{source_id}\x1f{ev['event']}\x1f{event_id}"
                seen = first_seen.get(key)
                if seen is not None and now - seen < DEDUP_WINDOW_S:
                    log.duplicates += 1
                    continue
                # The 48 h window counts from the first accepted copy, so only set it then.
                first_seen[key] = now
                expiry.append((now, key))
            keep.append(i)
        log.recorded = len(keep)
        self.duplicates += log.duplicates
        self._n_events += len(keep)
        if keep:
            meta = {
                "_pixel_code": source_id,
                "_event_source": body["event_source"],
                "_test_event_code": body.get("test_event_code"),
                "_request_id": log.request_id,
                "_received_at": now,
            }
            accepted = _Accepted(raw, meta, None if len(keep) == len(data) else keep)
            with self._lock:
                self._pending.append(accepted)

    def _expire(self, now: float) -> None:
        expiry, first_seen = self._expiry, self._first_seen
        while expiry and now - expiry[0][0] >= DEDUP_WINDOW_S:
            at, key = expiry.popleft()
            # A key re-accepted after expiry has a newer entry further back; keep that one.
            if first_seen.get(key) == at:
                del first_seen[key]

    def _describe(self, log: RequestLog, body: dict[str, Any]) -> None:
        pixel = body.get("event_source_id")
        log.pixel_code = pixel if type(pixel) is str else None
        tec = body.get("test_event_code")
        log.test_event_code = tec if type(tec) is str else None
        data = body.get("data")
        log.n_events = len(data) if type(data) is list else 0

    def _finish(self, log: RequestLog, started: float, reply: TrackReply) -> TrackReply:
        log.latency = time.perf_counter() - started
        self.requests.append(log)
        return reply

    def _next_request_id(self, now: float) -> str:
        self._seq += 1
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
        return f"{stamp}{self._seq:018X}"


def _setup_message(code: int, pixel: str | None) -> str:
    if code == c.NO_PERMISSION:
        return c.no_permission_message(pixel or "")
    if code == c.TOKEN_INVALID:
        return c.MSG_TOKEN_INVALID
    if code == c.TOKEN_EMPTY:
        return c.MSG_TOKEN_EMPTY
    return f"Injected setup error {code}"
