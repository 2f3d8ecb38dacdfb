"""Destination filters: allow-list, deny-list (incoming or TikTok name), order sources."""

from __future__ import annotations

from typing import Any

from pixelrelay.config import DestinationSettings, Secret
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.model import Event
from pixelrelay.routing import filter_reason


def settings(**kw: Any) -> DestinationSettings:
    return tiktok_destination(name="t", pixel_code="P", access_token=Secret("x"), **kw)


def ev(name: str = "Purchase", order_source: str | None = None) -> Event:
    return Event(name=name, event_id="e", event_time=1, order_source=order_source)


def test_defaults_let_everything_through() -> None:
    assert filter_reason(ev(), "CompletePayment", settings()) is None


def test_allow_list_matches_incoming_or_mapped_name() -> None:
    s = settings(events=("CompletePayment", "Lead"))
    assert filter_reason(ev("Purchase"), "CompletePayment", s) is None
    assert filter_reason(ev("Lead"), "SubmitForm", s) is None
    assert filter_reason(ev("PageView"), "Pageview", s) == "filter: event not in events allow-list"
    assert filter_reason(ev("PageView"), "Pageview", settings(events=())) is not None


def test_deny_list_matches_incoming_or_mapped_name() -> None:
    s = settings(exclude_events=("Pageview", "Lead"))
    assert filter_reason(ev("PageView"), "Pageview", s) == "filter: event in exclude_events"
    assert filter_reason(ev("Lead"), "SubmitForm", s) == "filter: event in exclude_events"
    assert filter_reason(ev("Purchase"), "CompletePayment", s) is None


def test_excluded_order_sources_ignore_case() -> None:
    s = settings(exclude_order_sources=("tiktok_shop",))
    assert filter_reason(ev(order_source="TikTok_Shop"), "CompletePayment", s) == (
        "filter: order_source TikTok_Shop in exclude_order_sources")
    assert filter_reason(ev(order_source="web"), "CompletePayment", s) is None
    assert filter_reason(ev(), "CompletePayment", s) is None
