"""The Destination protocol: decide a route at ingest, build requests, read answers. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.model import Event


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


class Unsendable(Exception):
    """payload(): the platform would refuse this event (and its whole request with it); the
    message is the reason, kept as the route's."""


class Destination(Protocol):
    name: str
    settings: DestinationSettings
    batch_size: int

    def event_name(self, event: Event) -> str:
        """The event's name at this destination (its event_map over its defaults)."""
        ...

    def batch_key(self, event: Event) -> str:
        """Events that may share a request share this key (TikTok: the event source)."""
        ...

    def unroutable(self, event: Event) -> str | None:
        """Why this destination cannot take the event at all (a filter reason), if so."""
        ...

    def payload(self, event: Event, dest_event: str) -> bytes:
        """One (consented) event as this destination's serialised item, its match keys
        hashed its own way."""
        ...

    def build_request(self, batch_key: str, payloads: Sequence[bytes]) -> HttpRequest:
        """One request carrying the given serialised items (at most batch_size)."""
        ...

    def classify(self, response: HttpResponse) -> Outcome: ...
