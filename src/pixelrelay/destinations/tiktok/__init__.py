"""The TikTok Events API v1.3 destination: route events at ingest, build and read requests."""

from __future__ import annotations

from collections.abc import Sequence

from pixelrelay.config import DestinationSettings
from pixelrelay.destinations.base import HttpRequest, HttpResponse, Outcome
from pixelrelay.destinations.tiktok import codes
from pixelrelay.destinations.tiktok.mapping import EventNames
from pixelrelay.destinations.tiktok.payload import (
    build_body,
    build_item,
    encode_item,
    track_url,
)
from pixelrelay.model import Channel, DeliveryState, Event, Route, Source
from pixelrelay.pipeline.consent import suppression_reason
from pixelrelay.pipeline.filters import filter_reason

# The config key naming TikTok's id for each event source (event_source_id).
SOURCE_ID_KEYS = {Source.WEB: "pixel_code", Source.OFFLINE: "offline_event_set_id",
                  Source.CRM: "crm_event_set_id", Source.APP: "app_id"}
_TEST_MARK = "|test="


def batch_key(source: Source, test_event_code: str | None) -> str:
    """Events sharing a request share their event_source and their Test Events code, so a
    sender's test events never ride in a production request (nor the other way round)."""
    return source.value + (_TEST_MARK + test_event_code if test_event_code else "")


def parse_batch_key(key: str) -> tuple[Source, str | None]:
    source, _, code = key.partition(_TEST_MARK)
    return Source(source), code or None


class TikTokDestination:
    """One configured pixel and event sets; implements `destinations.base.Destination`."""

    def __init__(self, settings: DestinationSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.batch_size = settings.batch_size
        self.names = EventNames(settings.event_map)
        self._url = track_url(settings.api_url)
        self.source_ids = {src: str(getattr(settings, key)) for src, key in SOURCE_ID_KEYS.items()}

    def route(self, event: Event, now: float) -> Route:
        names = self.names.as_sent if event.channel is Channel.TIKTOK_API else self.names
        dest_event = names(event.name, event.source.value)
        # The destination's own code sends everything to Test Events; else the sender's.
        key = batch_key(event.source, self.settings.test_event_code or event.test_event_code)
        reason = filter_reason(event, dest_event, self.settings)
        if reason is None and not self.source_ids[event.source]:
            reason = (f"filter: no {SOURCE_ID_KEYS[event.source]} configured for source "
                      f"{event.source.value} events")
        if reason is not None:
            return Route(self.name, dest_event, DeliveryState.FILTERED, reason=reason,
                         batch_key=key)
        reason = suppression_reason(event)
        if reason is not None:
            return Route(self.name, dest_event, DeliveryState.SUPPRESSED, reason=reason,
                         batch_key=key)
        return Route(self.name, dest_event, DeliveryState.PENDING,
                     payload=encode_item(build_item(event, dest_event)), batch_key=key)

    def build_request(self, batch_key: str, payloads: Sequence[bytes]) -> HttpRequest:
        source, test_code = parse_batch_key(batch_key)
        # Rows queued before a test_event_code was configured carry no code in their key.
        test_code = test_code or self.settings.test_event_code or None
        body = build_body(event_source_id=self.source_ids[source], event_source=source.value,
                          items=payloads, test_event_code=test_code)
        return HttpRequest(self._url, {"Access-Token": self.settings.access_token.reveal(),
                                       "Content-Type": "application/json"}, body)

    def classify(self, response: HttpResponse) -> Outcome:
        return codes.classify(response)


__all__ = ["TikTokDestination", "batch_key", "parse_batch_key"]
