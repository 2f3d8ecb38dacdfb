"""Where one event goes at one destination, decided at ingest (and by replay): filtered by the
destination's lists, suppressed by consent, or pending with the destination's payload."""

from __future__ import annotations

from pixelrelay.destinations.base import Destination, Unsendable
from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.model import DeliveryState, Event, Route
from pixelrelay.pipeline.consent import suppression_reason


def route(dest: Destination, event: Event) -> Route:
    """Map, filter and serialise one (hashed, consented) event for `dest`."""
    dest_event = dest.event_name(event)
    key = dest.batch_key(event)
    reason = filter_reason(event, dest_event, dest.settings) or dest.unroutable(event)
    if reason is not None:
        return Route(dest.name, dest_event, DeliveryState.FILTERED, reason=reason, batch_key=key)
    reason = suppression_reason(event)
    if reason is not None:
        return Route(dest.name, dest_event, DeliveryState.SUPPRESSED, reason=reason,
                     batch_key=key)
    try:
        body = dest.payload(event, dest_event)
    except Unsendable as why:
        return Route(dest.name, dest_event, DeliveryState.FILTERED, reason=str(why),
                     batch_key=key)
    return Route(dest.name, dest_event, DeliveryState.PENDING, payload=body, batch_key=key)


def filter_reason(event: Event, dest_event: str, settings: DestinationSettings) -> str | None:
    """Why this destination must not take the event, or None.

    List entries match the incoming name or the destination's name for it, so a config can
    say either the incoming name or the one the destination sends.
    """
    names = (event.name, dest_event)
    allow = settings.events
    if "*" not in allow and not any(n in allow for n in names):
        return "filter: event not in events allow-list"
    if any(n in settings.exclude_events for n in names):
        return "filter: event in exclude_events"
    src = event.order_source
    if src and settings.exclude_order_sources:
        low = src.lower()
        if any(low == x.lower() for x in settings.exclude_order_sources):
            return f"filter: order_source {src} in exclude_order_sources"
    return None
