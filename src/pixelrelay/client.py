"""Sync Python client for POST /v1/events: fixed event ids, chunking, retries that dedupe."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import orjson

from pixelrelay import __version__
from pixelrelay.errors import PixelrelayError
from pixelrelay.event_ids import PURCHASE_ID_NAME
from pixelrelay.event_ids import order_event_id as derive_order_event_id
from pixelrelay.names import snake_case

MAX_EVENTS_PER_REQUEST = 500
# Below the gateway's 1 MiB limit, leaving room for the envelope.
MAX_BODY_BYTES = 1000 * 1024
MAX_RETRY_AFTER_S = 60.0


class ClientError(PixelrelayError):
    """What the client raises: as such, the gateway refused the request (4xx) and retrying
    the same request will not help; its subclass GatewayUnavailable, the gateway could not be
    reached or answered 5xx/429 on every try. `except ClientError` catches both.

    `partial` holds the results of earlier chunks of a track_many call that were committed.
    `status` is None when no HTTP answer came.
    """

    def __init__(self, status: int | None, reason: str, body: Any = None,
                 partial: TrackResult | None = None) -> None:
        super().__init__(reason if status is None else f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.body = body
        self.partial = partial


class GatewayUnavailable(ClientError):
    """Every try failed (network, timeout, 5xx or 429); the events may be retried later with
    the same event_ids (see `event_ids`), which the gateway deduplicates."""

    def __init__(self, reason: str, status: int | None, event_ids: list[str | None],
                 partial: TrackResult | None = None) -> None:
        super().__init__(status, reason, None, partial)
        self.event_ids = event_ids


@dataclass
class TrackResult:
    """The gateway's answer: `event_ids` has one entry per input event, in input order."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    event_ids: list[str | None] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def _extend(self, answer: dict[str, Any], offset: int) -> None:
        self.accepted += int(answer.get("accepted", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        for r in answer.get("rejected", []):
            self.rejected.append({**r, "index": int(r["index"]) + offset})
        ids: list[str | None] = list(answer.get("event_ids", []))
        for r in answer.get("rejected", []):  # no id for a refused event, as the API says
            if 0 <= int(r["index"]) < len(ids):
                ids[int(r["index"])] = None
        self.event_ids.extend(ids)
        self.warnings.extend(answer.get("warnings", []))


def order_event_id(order_id: str | int, event_name: str | None = None) -> str:
    """The id the gateway and the browser tag derive for an order: ord_<id>_<snake name>,
    where the name is the one the first destination sends (a purchase by default)."""
    snake = PURCHASE_ID_NAME if event_name is None else snake_case(event_name)
    return derive_order_event_id(str(order_id), snake)


class Client:
    """`with Client(url, key) as c: c.track("Purchase", properties={...})`."""

    def __init__(self, url: str, key: str, *, timeout: float = 10, retries: int = 3,
                 backoff: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = url.rstrip("/") + "/v1/events"
        self.retries = max(0, retries)
        self.backoff = backoff
        self._http = httpx.Client(
            timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                     "User-Agent": f"pixelrelay-python/{__version__}"})

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def track(self, event: str, *, event_id: str | None = None,
              timestamp: int | float | str | None = None, user: dict[str, Any] | None = None,
              properties: dict[str, Any] | None = None, page: dict[str, Any] | None = None,
              session_id: str | None = None, order_source: str | None = None,
              consent: dict[str, Any] | None = None, source: str | None = None) -> TrackResult:
        fields = {"event": event, "event_id": event_id, "timestamp": timestamp, "user": user,
                  "properties": properties, "page": page, "session_id": session_id,
                  "order_source": order_source, "consent": consent, "source": source}
        return self.track_many([{k: v for k, v in fields.items() if v is not None}])

    def track_many(self, events: Sequence[dict[str, Any]]) -> TrackResult:
        """Send events in requests of at most 500 events (and under 1 MiB), in order."""
        prepared = [_with_id(e) for e in events]
        ids: list[str | None] = [e.get("event_id") for e in prepared]
        result = TrackResult()
        offset = 0
        for chunk in _chunks([orjson.dumps(e) for e in prepared]):
            body = b'{"events":[' + b",".join(chunk) + b"]}"
            try:
                answer = self._post(body)
            except GatewayUnavailable as exc:  # before ClientError: it is one
                exc.event_ids, exc.partial = ids, result
                raise
            except ClientError as exc:
                exc.partial = result
                raise
            result._extend(answer, offset)
            offset += len(chunk)
        return result

    def _post(self, body: bytes) -> dict[str, Any]:
        """POST with retries: safe because every event's id is fixed before the first try."""
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = self._http.post(self.endpoint, content=body)
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                status: int | None = None
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 400:
                    answer: dict[str, Any] = response.json()
                    return answer
                reason = _reason(response)
                if status != 429 and status < 500:
                    raise ClientError(status, reason, _json_or_text(response))
                wait = _retry_after(response)
            if attempt >= self.retries:
                raise GatewayUnavailable(
                    f"gave up after {attempt + 1} tries: {reason}", status, [])
            if wait is None:
                # Jitter keeps many backends that failed together from retrying in lockstep.
                wait = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
            time.sleep(wait)
            attempt += 1


def _with_id(event: dict[str, Any]) -> dict[str, Any]:
    """A copy with an event_id fixed now, so a retry of the request is a duplicate.

    An event with properties.order_id keeps no id: the gateway derives ord_<order_id>_...,
    deterministic too, and equal to what the browser tag sends for the same order.
    """
    if not isinstance(event, dict):
        raise TypeError(f"event must be a dict, got {type(event).__name__}")
    props = event.get("properties")
    has_order = isinstance(props, dict) and props.get("order_id") not in (None, "")
    if event.get("event_id") not in (None, "") or has_order:
        return event
    return {**event, "event_id": str(uuid.uuid4())}


def _chunks(encoded: list[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for item in encoded:
        if current and (len(current) >= MAX_EVENTS_PER_REQUEST
                        or size + len(item) + 1 > MAX_BODY_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current:
        chunks.append(current)
    return chunks


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _reason(response: httpx.Response) -> str:
    body = _json_or_text(response)
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        return str(body["reason"])
    return str(body)[:500] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        return min(max(float(raw), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None
