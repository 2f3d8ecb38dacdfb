"""Default TikTok names, per-destination overrides, casing suggestions and snake_case."""

from __future__ import annotations

import pytest

from pixelrelay.destinations.tiktok.mapping import (
    DEFAULT_MAP,
    STANDARD_EVENTS,
    casing_suggestions,
    default_tiktok_name,
    snake_case,
    tiktok_name,
)


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


def test_casing_suggestions() -> None:
    assert casing_suggestions("purchase") == ("Purchase",)
    assert casing_suggestions("ADDTOCART") == ("AddToCart",)
    assert casing_suggestions("pageview") == ("PageView", "Pageview")
    assert casing_suggestions("Purchase") == ()
    assert casing_suggestions("Pageview") == ()
    assert casing_suggestions("my_custom") == ()


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
