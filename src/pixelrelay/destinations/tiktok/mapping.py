"""TikTok event names: the standard lists, the default incoming -> TikTok map, snake_case.

Known names (TikTok's own, ours, and the Segment / RudderStack e-commerce spec names most
stacks already emit) match case- and separator-insensitively: "Order Completed",
"order completed" and "order_completed" are one name. Anything else passes unchanged as a
custom event.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from pixelrelay.names import name_key

# Events 2.0 web list plus the legacy names TikTok still accepts and the Pixel still sends.
STANDARD_EVENTS: frozenset[str] = frozenset({
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "ApplicationApproval",
    "CompleteRegistration", "Contact", "CustomizeProduct", "Download", "FindLocation",
    "InitiateCheckout", "Lead", "Purchase", "Schedule", "Search", "StartTrial",
    "SubmitApplication", "Subscribe", "ViewContent",
    "CompletePayment", "SubmitForm", "PlaceAnOrder", "ClickButton", "Pageview",
})

# What counts as a purchase (the order itself), whatever name the destination sends it by.
PURCHASE_EVENTS: frozenset[str] = frozenset({"CompletePayment", "Purchase"})

# event_source = app has a list of its own (note TikTok's casing of LaunchAPP, InAppAD*).
APP_STANDARD_EVENTS: frozenset[str] = frozenset({
    "AchieveLevel", "AddPaymentInfo", "AddToCart", "AddToWishlist", "Checkout",
    "CompleteTutorial", "CreateGroup", "CreateRole", "GenerateLead", "InAppADClick",
    "InAppADImpr", "InstallApp", "JoinGroup", "LaunchAPP", "LoanApplication", "LoanApproval",
    "LoanDisbursal", "Login", "Purchase", "Rate", "Registration", "Search", "SpendCredits",
    "StartTrial", "Subscribe", "UnlockAchievement", "ViewContent",
})

# SPEC §4. CompletePayment/SubmitForm (not Purchase/Lead) because that is what the browser
# Pixel sends by default, and TikTok deduplicates only on an identical event name.
OWN_MAP: Mapping[str, str] = {
    "PageView": "Pageview",
    "Purchase": "CompletePayment",
    "Lead": "SubmitForm",
    "SignUp": "CompleteRegistration",
}

# Segment's TikTok Conversions presets (written with TikTok) and RudderStack's tiktok_ads
# eventNameMapping. Where they disagree, Segment wins: RudderStack maps "Order Completed" to
# PlaceAnOrder and "Checkout Step Completed" to CompletePayment; an event_map overrides both.
SPEC_MAP: Mapping[str, str] = {
    "Order Completed": "CompletePayment",
    "Checkout Step Completed": "CompletePayment",
    "Order Placed": "PlaceAnOrder",
    "Product Viewed": "ViewContent",
    "Product Clicked": "ClickButton",
    "Products Searched": "Search",
    "Product Added": "AddToCart",
    "Product Added to Wishlist": "AddToWishlist",
    "Checkout Started": "InitiateCheckout",
    "Payment Info Entered": "AddPaymentInfo",
    "Signed Up": "CompleteRegistration",
    "Form Submitted": "SubmitForm",
    "Subscription Created": "Subscribe",
    "Callback Started": "Contact",
    "Download Link Clicked": "Download",
    "Application Approval": "ApplicationApproval",
    "Submit Application": "SubmitApplication",
    "Start Trial": "StartTrial",
    "Trial Started": "StartTrial",
}

# App events: the web names above that have an app counterpart of another name.
_APP_EQUIVALENT: Mapping[str, str] = {
    "CompletePayment": "Purchase",
    "PlaceAnOrder": "Checkout",
    "InitiateCheckout": "Checkout",
    "CompleteRegistration": "Registration",
    "SubmitForm": "GenerateLead",
    "Lead": "GenerateLead",
}

def _keyed(pairs: Mapping[str, str]) -> dict[str, str]:
    return {name_key(k): v for k, v in pairs.items()}


# Standard names map to themselves, so "add_to_cart" becomes AddToCart; our own and the
# spec names come after, so "pageview" is Pageview and "lead" is SubmitForm as in SPEC §4.
_WEB_DEFAULTS: dict[str, str] = {
    **{name_key(n): n for n in STANDARD_EVENTS},
    **_keyed(SPEC_MAP),
    **_keyed(OWN_MAP),
}
_APP_DEFAULTS: dict[str, str] = {name_key(n): n for n in APP_STANDARD_EVENTS}
_LOOKALIKES: dict[str, str] = {name_key(n): n for n in
                               (*SPEC_MAP, *OWN_MAP, *APP_STANDARD_EVENTS, *STANDARD_EVENTS)}
# Every incoming name the defaults know, as written in the tables (for docs and checks).
DEFAULT_MAP: Mapping[str, str] = {
    **{n: n for n in sorted(STANDARD_EVENTS)}, **SPEC_MAP, **OWN_MAP}


class EventNames:
    """One destination's name mapping: its `event_map` overrides first, then the defaults;
    unknown names pass unchanged. Overrides match exactly, then by name_key like the
    defaults. App events prefer TikTok's app list (Purchase, not the Pixel's CompletePayment).
    """

    __slots__ = ("_exact", "_keyed")

    def __init__(self, event_map: Mapping[str, str] | None = None) -> None:
        self._exact = {k: v for k, v in (event_map or {}).items() if v}
        self._keyed = {name_key(k): v for k, v in self._exact.items()}

    def as_sent(self, name: str, source: str = "web") -> str:
        """For names that already are TikTok's (the drop-in endpoint): only an exact override
        renames them. "Purchase" stays Purchase, so it still deduplicates with a Pixel that
        sends Purchase."""
        return self._exact.get(name) or name

    def web_table(self) -> tuple[dict[str, str], dict[str, str]]:
        """(exact overrides, name_key -> TikTok name) for web events: what the browser tag
        embeds to name the Pixel's event exactly as the server will."""
        return dict(self._exact), {**_WEB_DEFAULTS, **self._keyed}

    def __call__(self, name: str, source: str = "web") -> str:
        mapped = self._exact.get(name)
        if mapped:
            return mapped
        key = name_key(name)
        mapped = self._keyed.get(key)
        if mapped:
            return mapped
        if source == "app":
            app = _APP_DEFAULTS.get(key)
            if app is not None:
                return app
            web = _WEB_DEFAULTS.get(key)
            return _APP_EQUIVALENT.get(web, web) if web is not None else name
        return _WEB_DEFAULTS.get(key, name)


_NO_OVERRIDES = EventNames()


def bridge_table(event_map: Mapping[str, str]) -> dict[str, object]:
    """What TikTok's part of the tag is served with: its names under the event_map."""
    exact, keyed = EventNames(event_map).web_table()
    return {"map": exact, "keys": keyed}


def tiktok_name(name: str, event_map: Mapping[str, str], source: str = "web") -> str:
    """The TikTok name of `name` under `event_map` (see EventNames; build one for hot paths)."""
    return (EventNames(event_map) if event_map else _NO_OVERRIDES)(name, source)


def default_tiktok_name(name: str) -> str:
    return _NO_OVERRIDES(name)


def is_standard(tiktok_event: str, source: str = "web") -> bool:
    return tiktok_event in (APP_STANDARD_EVENTS if source == "app" else STANDARD_EVENTS)


def lookalike_standard(tiktok_event: str) -> str | None:
    """For a custom name, the standard name it probably meant ("Purchased" -> Purchase),
    else None. Only a hint for the diagnostics page: the event still goes as sent."""
    if tiktok_event in STANDARD_EVENTS or tiktok_event in APP_STANDARD_EVENTS:
        return None
    key = name_key(tiktok_event)
    if not key:
        return None
    match = difflib.get_close_matches(key, list(_LOOKALIKES), n=1, cutoff=0.8)
    return _LOOKALIKES[match[0]] if match else None

