"""Default TikTok names, spec names, per-destination overrides, look-alikes and snake_case."""

from __future__ import annotations

import pytest

from pixelrelay.destinations.tiktok.mapping import (
    APP_STANDARD_EVENTS,
    DEFAULT_MAP,
    STANDARD_EVENTS,
    EventNames,
    default_tiktok_name,
    lookalike_standard,
    tiktok_name,
)
from pixelrelay.names import name_key, snake_case


@pytest.mark.parametrize(("incoming", "expected"), [
    ("PageView", "Pageview"),
    ("Purchase", "CompletePayment"),
    ("CompletePayment", "CompletePayment"),
    ("Order Completed", "CompletePayment"),
    ("Lead", "SubmitForm"),
    ("SubmitForm", "SubmitForm"),
    ("SignUp", "CompleteRegistration"),
    ("CompleteRegistration", "CompleteRegistration"),
    ("ViewContent", "ViewContent"),
    ("Search", "Search"),
    ("AddToWishlist", "AddToWishlist"),
    ("AddToCart", "AddToCart"),
    ("InitiateCheckout", "InitiateCheckout"),
    ("AddPaymentInfo", "AddPaymentInfo"),
    ("PlaceAnOrder", "PlaceAnOrder"),
    ("Subscribe", "Subscribe"),
    ("Contact", "Contact"),
    ("StartTrial", "StartTrial"),
    ("trial_extended", "trial_extended"),  # custom names pass
])
def test_default_map(incoming: str, expected: str) -> None:
    assert default_tiktok_name(incoming) == expected
    assert tiktok_name(incoming, {}) == expected


def test_every_default_target_is_a_standard_name() -> None:
    assert set(DEFAULT_MAP.values()) <= STANDARD_EVENTS
    assert {"CompletePayment", "SubmitForm", "PlaceAnOrder", "ClickButton", "Pageview",
            "Purchase", "Lead"} <= STANDARD_EVENTS


def test_override_wins_over_default() -> None:
    emap = {"Purchase": "Purchase", "PageView": "ViewContent", "trial": "StartTrial"}
    assert tiktok_name("Purchase", emap) == "Purchase"
    assert tiktok_name("PageView", emap) == "ViewContent"
    assert tiktok_name("trial", emap) == "StartTrial"
    assert tiktok_name("Order Completed", emap) == "CompletePayment"


@pytest.mark.parametrize(("incoming", "expected"), [
    # Segment's TikTok Conversions presets
    ("Order Completed", "CompletePayment"),
    ("Product Added", "AddToCart"),
    ("Product Viewed", "ViewContent"),
    ("Checkout Started", "InitiateCheckout"),
    ("Products Searched", "Search"),
    ("Product Added to Wishlist", "AddToWishlist"),
    ("Payment Info Entered", "AddPaymentInfo"),
    ("Order Placed", "PlaceAnOrder"),
    ("Signed Up", "CompleteRegistration"),
    ("Form Submitted", "SubmitForm"),
    ("Subscription Created", "Subscribe"),
    ("Callback Started", "Contact"),
    ("Download Link Clicked", "Download"),
    ("Product Clicked", "ClickButton"),
    # RudderStack's eventNameMapping (lower-case keys)
    ("checkout step completed", "CompletePayment"),
    ("submit application", "SubmitApplication"),
    ("start trial", "StartTrial"),
    ("viewcontent", "ViewContent"),
    # case and separators do not matter for known names
    ("order completed", "CompletePayment"),
    ("order_completed", "CompletePayment"),
    ("ORDER-COMPLETED", "CompletePayment"),
    ("checkout started", "InitiateCheckout"),
    ("purchase", "CompletePayment"),
    ("add_to_cart", "AddToCart"),
    ("pageview", "Pageview"),
    ("lead", "SubmitForm"),
    ("Order Refunded", "Order Refunded"),  # unknown: a custom event, unchanged
])
def test_spec_names_map_case_and_separator_insensitively(incoming: str, expected: str) -> None:
    assert tiktok_name(incoming, {}) == expected


def test_every_spec_target_is_standard_and_every_app_default_is_an_app_name() -> None:
    assert set(DEFAULT_MAP.values()) <= STANDARD_EVENTS
    for name in DEFAULT_MAP:
        # ClickButton, Contact, ... have no app counterpart and go as custom app events
        assert tiktok_name(name, {}, "app") in APP_STANDARD_EVENTS | STANDARD_EVENTS


def test_overrides_match_by_name_key_too() -> None:
    names = EventNames({"Order Completed": "Purchase", "trial": "StartTrial"})
    assert names("Order Completed") == "Purchase"
    assert names("order_completed") == "Purchase"
    assert names("TRIAL") == "StartTrial"
    assert names("Product Added") == "AddToCart"  # the defaults still apply


def test_app_events_use_the_app_list() -> None:
    assert tiktok_name("Purchase", {}, "app") == "Purchase"
    assert tiktok_name("Order Completed", {}, "app") == "Purchase"
    assert tiktok_name("launch_app", {}, "app") == "LaunchAPP"
    assert tiktok_name("Signed Up", {}, "app") == "Registration"
    assert tiktok_name("Purchase", {"Purchase": "CompletePayment"}, "app") == "CompletePayment"


@pytest.mark.parametrize(("custom", "meant"), [
    ("Purchased", "Purchase"), ("AddToCard", "AddToCart"), ("Subscribed", "Subscribe"),
    ("Order Complete", "Order Completed"),
    ("trial_extended", None), ("AddToCart", None), ("LaunchAPP", None)])
def test_lookalike_standard(custom: str, meant: str | None) -> None:
    assert lookalike_standard(custom) == meant


def test_name_key() -> None:
    assert name_key(" Order  Completed ") == name_key("order-completed") == "ordercompleted"


@pytest.mark.parametrize(("name", "snake"), [
    ("CompletePayment", "complete_payment"),
    ("Order Completed", "order_completed"),
    ("AddToCart", "add_to_cart"),
    ("Pageview", "pageview"),
    ("LaunchAPP", "launch_app"),
    ("InAppADClick", "in_app_ad_click"),
    ("already_snake", "already_snake"),
    ("Step2Done", "step2_done"),
])
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake
