"""The TikTok Events API v1.3 destination: route events at ingest, build and read requests."""

from __future__ import annotations

from collections.abc import Sequence

from pixelrelay.config import DestinationSettings
from pixelrelay.destinations.base import HttpRequest, HttpResponse, Outcome
from pixelrelay.destinations.tiktok import codes
from pixelrelay.destinations.tiktok.mapping import tiktok_name
from pixelrelay.destinations.tiktok.payload import (
    build_body,
    build_item,
    encode_item,
    track_url,
)
from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.pipeline.consent import suppression_reason
from pixelrelay.pipeline.filters import filter_reason


class TikTokDestination:
    """One configured pixel (or event set); implements `destinations.base.Destination`."""

    def __init__(self, settings: DestinationSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.batch_size = settings.batch_size
        self._url = track_url(settings.api_url)

    def route(self, event: Event, now: float) -> Route:
        dest_event = tiktok_name(event.name, self.settings.event_map)
        batch_key = event.source.value
        reason = filter_reason(event, dest_event, self.settings)
        if reason is not None:
            return Route(self.name, dest_event, DeliveryState.FILTERED, reason=reason,
                         batch_key=batch_key)
        reason = suppression_reason(event)
        if reason is not None:
            return Route(self.name, dest_event, DeliveryState.SUPPRESSED, reason=reason,
                         batch_key=batch_key)
        return Route(self.name, dest_event, DeliveryState.PENDING,
                     payload=encode_item(build_item(event, dest_event)), batch_key=batch_key)

    def build_request(self, batch_key: str, payloads: Sequence[bytes]) -> HttpRequest:
        s = self.settings
        body = build_body(pixel_code=s.pixel_code, event_source=batch_key, items=payloads,
                          test_event_code=s.test_event_code)
        return HttpRequest(self._url, {"Access-Token": s.access_token.reveal(),
                                       "Content-Type": "application/json"}, body)

    def classify(self, response: HttpResponse) -> Outcome:
        return codes.classify(response)


__all__ = ["TikTokDestination"]
