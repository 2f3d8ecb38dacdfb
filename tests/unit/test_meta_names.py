"""Meta event names: the standard list, TikTok-style and spec names mapped, overrides."""

from __future__ import annotations

import pytest

from pixelrelay.destinations.meta.names import (
    DEFAULT_MAP,
    PURCHASE_EVENTS,
    STANDARD_EVENTS,
    EventNames,
    is_purchase,
    is_standard,
)

NAMES = EventNames()


def test_standard_events() -> None:
    assert {
        "Purchase", "AddToCart", "ViewContent", "InitiateCheckout", "AddPaymentInfo", "Lead",
        "CompleteRegistration", "Search", "Subscribe", "StartTrial", "Contact",
        "AddToWishlist", "PageView", "CustomizeProduct", "Donate", "FindLocation",
        "Schedule", "SubmitApplication"} == STANDARD_EVENTS
    assert all(NAMES(n) == n for n in STANDARD_EVENTS)
    assert {"Purchase"} == PURCHASE_EVENTS
    assert is_purchase("Purchase") and not is_purchase("CompletePayment")
    assert is_standard("PageView") and not is_standard("Pageview")


@pytest.mark.parametrize(("incoming", "meta"), [
    ("CompletePayment", "Purchase"), ("SubmitForm", "Lead"), ("Pageview", "PageView"),
    ("page_view", "PageView"), ("add_to_cart", "AddToCart"), ("Order Completed", "Purchase"),
    ("order_completed", "Purchase"), ("Checkout Started", "InitiateCheckout"),
    ("SignUp", "CompleteRegistration"), ("Subscribe", "Subscribe"),
    # No Meta equivalent, or one that would double-count: sent as custom events.
    ("PlaceAnOrder", "PlaceAnOrder"), ("ClickButton", "ClickButton"),
    ("Download", "Download"), ("Order Placed", "Order Placed"), ("my_custom", "my_custom"),
])
def test_default_map(incoming: str, meta: str) -> None:
    assert NAMES(incoming) == meta
    assert NAMES(incoming, "app") == meta  # one list for every action_source


def test_every_default_target_is_standard() -> None:
    assert set(DEFAULT_MAP.values()) <= STANDARD_EVENTS


def test_event_map_overrides_defaults() -> None:
    names = EventNames({"PlaceAnOrder": "Purchase", "Lead": "", "signup": "Subscribe"})
    assert names("PlaceAnOrder") == "Purchase"
    assert names("place_an_order") == "Purchase"  # matched by name_key like the defaults
    assert names("SignUp") == "Subscribe"
    assert names("Lead") == "Lead"  # an empty override is no override


def test_as_sent_keeps_metas_own_names() -> None:
    names = EventNames({"Pageview": "ViewContent"})
    assert names.as_sent("Pageview") == "ViewContent"
    assert names.as_sent("CompletePayment") == "CompletePayment"  # a drop-in sender's custom
    assert names.as_sent("Purchase") == "Purchase"


def test_other_platforms_names_for_pixelrelays_own_come_from_the_registry() -> None:
    """Meta's folder names no other platform's events: each registered type declares its
    name for pixelrelay's own (concept_names) and Meta adopts the others' as its defaults."""
    from pixelrelay.destinations import REGISTRY, foreign_names

    other = REGISTRY["tiktok"].concept_names
    foreign = foreign_names(REGISTRY["meta"])
    assert foreign[other["Purchase"]] == "Purchase" and foreign[other["Lead"]] == "Lead"
    assert NAMES(other["Purchase"]) in PURCHASE_EVENTS
    # They are incoming names Meta's defaults know (ops.gap finds purchases by them).
    assert {other["Purchase"], other["Lead"]} <= REGISTRY["meta"].default_incoming
    assert {other["Purchase"], other["Lead"]} <= set(DEFAULT_MAP)
