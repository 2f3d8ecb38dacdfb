"""The Destination protocol: decide a route at ingest, build requests, read answers. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pixelrelay.model import Event, Route


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # network error, 5xx, throttling, TikTok server codes, unknown
    PERMANENT = "permanent"  # the request (or an event in it) is invalid; never retried as is
    SETUP = "setup"  # token / permission problem: pause the destination


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    code: int | None = None
    message: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What came back; status None with `error` set means no HTTP answer (network, timeout)."""

    status: int | None
    body: bytes = b""
    error: str | None = None
    latency_ms: float = 0.0


class Destination(Protocol):
    name: str
    batch_size: int

    def route(self, event: Event, now: float) -> Route:
        """Map, filter and serialise one (hashed, consented) event for this destination."""
        ...

    def build_request(self, batch_key: str, payloads: Sequence[bytes]) -> HttpRequest:
        """One request carrying the given serialised items (at most batch_size)."""
        ...

    def classify(self, response: HttpResponse) -> Outcome: ...
