"""TikTok event names: the standard list, the default incoming -> TikTok map, snake_case."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Events 2.0 web list plus the legacy names TikTok still accepts and the Pixel still sends.
STANDARD_EVENTS: frozenset[str] = frozenset({
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "ApplicationApproval",
    "CompleteRegistration", "Contact", "CustomizeProduct", "Download", "FindLocation",
    "InitiateCheckout", "Lead", "Purchase", "Schedule", "Search", "StartTrial",
    "SubmitApplication", "Subscribe", "ViewContent",
    "CompletePayment", "SubmitForm", "PlaceAnOrder", "ClickButton", "Pageview",
})

# SPEC §4. CompletePayment/SubmitForm (not Purchase/Lead) because that is what the browser
# Pixel sends by default, and TikTok deduplicates only on an identical event name.
DEFAULT_MAP: Mapping[str, str] = {
    "PageView": "Pageview",
    "Purchase": "CompletePayment",
    "CompletePayment": "CompletePayment",
    "Order Completed": "CompletePayment",
    "Lead": "SubmitForm",
    "SubmitForm": "SubmitForm",
    "SignUp": "CompleteRegistration",
    "CompleteRegistration": "CompleteRegistration",
}

# Every name we recognise; used to refuse near-misses in casing ("purchase") at parse time.
KNOWN_EVENTS: frozenset[str] = STANDARD_EVENTS | frozenset(DEFAULT_MAP)

_BY_LOWER: dict[str, tuple[str, ...]] = {}
for _name in sorted(KNOWN_EVENTS):
    _BY_LOWER[_name.lower()] = (*_BY_LOWER.get(_name.lower(), ()), _name)


def casing_suggestions(name: str) -> tuple[str, ...]:
    """Known names equal to `name` except for casing (empty when `name` is exact or unknown)."""
    if name in KNOWN_EVENTS:
        return ()
    return _BY_LOWER.get(name.lower(), ())


def default_tiktok_name(name: str) -> str:
    return DEFAULT_MAP.get(name, name)


def tiktok_name(name: str, event_map: Mapping[str, str]) -> str:
    """The destination's override first, then the default map; custom names pass unchanged."""
    mapped = event_map.get(name)
    return mapped if mapped else DEFAULT_MAP.get(name, name)


_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def snake_case(name: str) -> str:
    """CompletePayment -> complete_payment, "Order Completed" -> order_completed."""
    spaced = _WORD_BOUNDARY.sub("_", name)
    return _NON_ALNUM.sub("_", spaced).strip("_").lower()
