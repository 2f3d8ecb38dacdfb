"""Meta event names: its standard events, the default incoming -> Meta map, its purchases.

Incoming names are pixelrelay's own, the Segment / RudderStack e-commerce spec names and the
other registered platforms' names for pixelrelay's own (what many senders already emit, taken
in by `adopt` from the registry); they match case- and separator-insensitively. Anything else
passes unchanged as a custom event name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

# Meta's standard events (Meta Pixel reference; the Conversions API takes the same names).
STANDARD_EVENTS: frozenset[str] = frozenset({
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration", "Contact",
    "CustomizeProduct", "Donate", "FindLocation", "InitiateCheckout", "Lead", "PageView",
    "Purchase", "Schedule", "Search", "StartTrial", "SubmitApplication", "Subscribe",
    "ViewContent",
})

# The order itself. Meta requires value and currency with it (error 100/2804009).
PURCHASE_EVENTS: frozenset[str] = frozenset({"Purchase"})

# Meta's name for each of pixelrelay's own names (SPEC 4), the concepts every destination type
# names: another type's name for one of them (its purchase, its lead) arrives here as Meta's.
# Another platform's names with no such concept stay custom events on purpose: an order before
# payment (as Purchase it would count an order twice when the payment follows with its own
# event_id), a button click, a download, an application's approval.
CONCEPT_NAMES: Mapping[str, str] = {
    "PageView": "PageView",
    "Purchase": "Purchase",
    "Lead": "Lead",
    "SignUp": "CompleteRegistration",
}

# pixelrelay's own names that are not Meta's.
OWN_MAP: Mapping[str, str] = {
    "SignUp": "CompleteRegistration",
}

# The Segment / RudderStack e-commerce spec names (the same table the TikTok destination
# reads, with Meta's names); "Order Placed" stays custom for the reason PlaceAnOrder does.
SPEC_MAP: Mapping[str, str] = {
    "Order Completed": "Purchase",
    "Product Viewed": "ViewContent",
    "Products Searched": "Search",
    "Product Added": "AddToCart",
    "Product Added to Wishlist": "AddToWishlist",
    "Checkout Started": "InitiateCheckout",
    "Payment Info Entered": "AddPaymentInfo",
    "Signed Up": "CompleteRegistration",
    "Form Submitted": "Lead",
    "Subscription Created": "Subscribe",
    "Callback Started": "Contact",
    "Submit Application": "SubmitApplication",
    "Start Trial": "StartTrial",
    "Trial Started": "StartTrial",
}

_SEPARATORS = re.compile(r"[\s_\-.:/]+")


@lru_cache(maxsize=4096)  # the same few names recur on every event
def name_key(name: str) -> str:
    """The comparison form of an event name: lower-case, without spaces or separators."""
    return _SEPARATORS.sub("", name).lower()


def _tables(foreign: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(name_key -> Meta name, every incoming name as written -> Meta name). Standard names
    map to themselves ("add_to_cart" -> AddToCart); the tables come after, pixelrelay's own
    last."""
    keyed = {**{name_key(n): n for n in STANDARD_EVENTS},
             **{name_key(k): v for k, v in SPEC_MAP.items()},
             **{name_key(k): v for k, v in foreign.items()},
             **{name_key(k): v for k, v in OWN_MAP.items()}}
    written = {**{n: n for n in sorted(STANDARD_EVENTS)}, **SPEC_MAP, **foreign, **OWN_MAP}
    return keyed, written


_DEFAULTS, _WRITTEN = _tables({})
# Every incoming name the defaults know, as written in the tables (for docs and checks).
DEFAULT_MAP: Mapping[str, str] = _WRITTEN


def adopt(foreign: Mapping[str, str]) -> frozenset[str]:
    """Take other platforms' names for pixelrelay's own (their name -> Meta's, from each
    registered type's concept_names) into the defaults; a name Meta's own tables know keeps
    its meaning. Called once, when the registry is built; gives every incoming name the
    defaults then know."""
    mine, _ = _tables({})
    keyed, written = _tables({k: v for k, v in foreign.items() if name_key(k) not in mine})
    _DEFAULTS.clear()
    _DEFAULTS.update(keyed)
    _WRITTEN.clear()
    _WRITTEN.update(written)
    return frozenset(written)


class EventNames:
    """One Meta destination's name mapping: its `event_map` first (exact, then by name_key),
    then the defaults; unknown names pass unchanged as custom events. Meta has one list for
    web, app and offline events, so `source` does not change the answer."""

    __slots__ = ("_exact", "_keyed")

    def __init__(self, event_map: Mapping[str, str] | None = None) -> None:
        self._exact = {k: v for k, v in (event_map or {}).items() if v}
        self._keyed = {name_key(k): v for k, v in self._exact.items()}

    def __call__(self, name: str, source: str = "web") -> str:
        mapped = self._exact.get(name)
        if mapped:
            return mapped
        key = name_key(name)
        return self._keyed.get(key) or _DEFAULTS.get(key, name)

    def as_sent(self, name: str, source: str = "web") -> str:
        """For names that already are Meta's (the drop-in endpoint): only an exact override
        renames them, so a custom name a Pixel also sends still deduplicates with it."""
        return self._exact.get(name) or name

    def web_table(self) -> tuple[dict[str, str], dict[str, str]]:
        """(exact overrides, name_key -> Meta name): what the browser tag embeds to name
        the Pixel's event exactly as the server will."""
        return dict(self._exact), {**_DEFAULTS, **self._keyed}


def bridge_table(event_map: Mapping[str, str]) -> dict[str, object]:
    """What Meta's part of the tag is served with: the names, and which are standard
    (fbq 'track'; any other name goes by 'trackCustom')."""
    exact, keyed = EventNames(event_map).web_table()
    return {"map": exact, "keys": keyed, "standard": sorted(STANDARD_EVENTS)}


def is_standard(meta_event: str) -> bool:
    return meta_event in STANDARD_EVENTS


def is_purchase(meta_event: str) -> bool:
    return meta_event in PURCHASE_EVENTS
