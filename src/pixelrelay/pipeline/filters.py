"""A destination's event allow/deny lists and excluded order sources."""

from __future__ import annotations

from pixelrelay.config import DestinationSettings
from pixelrelay.model import Event


def filter_reason(event: Event, dest_event: str, settings: DestinationSettings) -> str | None:
    """Why this destination must not take the event, or None.

    List entries match the incoming name or the mapped TikTok name, so a config can say
    either "Purchase" or "CompletePayment".
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
