"""The Shopify Customer Events custom pixel, written for one browser source: the code a
merchant pastes in Settings -> Customer events -> Add custom pixel, with the gateway's
public URL, the source's site key and the first destination's event names filled in."""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

import orjson

from pixelrelay.config import Settings, SourceSettings
from pixelrelay.destinations.tiktok.mapping import tiktok_name
from pixelrelay.errors import PixelrelayError
from pixelrelay.sources.browser_rules import CONFIG_MARK

_TEMPLATE = (resources.files("pixelrelay.sources") / "static" / "shopify_pixel.js").read_text(
    "utf-8")
CONSENT_COOKIE_DAYS = 180  # how long the pixel remembers a visitor's "no" on later pages
# The events the pixel sends (Shopify's page_viewed ... checkout_completed, mapped in it).
PIXEL_EVENTS = ("PageView", "ViewContent", "Search", "AddToCart", "InitiateCheckout",
                "AddPaymentInfo", "Purchase")


class PixelError(PixelrelayError):
    """The pixel cannot be written for these arguments; the message names the flag."""


def browser_source(settings: Settings, name: str) -> SourceSettings:
    for source in settings.sources:
        if source.name == name:
            if source.kind != "browser":
                raise PixelError(f"--source {name}: is a {source.kind} source; the pixel "
                                 "sends with a browser source's site key")
            return source
    names = ", ".join(s.name for s in settings.sources if s.kind == "browser") or "none"
    raise PixelError(f"--source {name}: no such source (browser sources: {names})")


def public_endpoint(url: str) -> str:
    """The gateway's public base URL as the pixel posts to it, or a PixelError saying why
    it cannot be one."""
    text = url.strip().rstrip("/")
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PixelError(f"--url {url!r}: must be the gateway's public URL, such as "
                         "https://events.shop.example")
    if parts.query or parts.fragment:
        raise PixelError(f"--url {url!r}: must have no query or fragment")
    return text


def content_id_setting(settings: Settings, source: SourceSettings) -> str:
    """The line items' content_id, as the Shopify webhook source names them: a pixel copy
    and a webhook copy of one order must list the same products."""
    shopify = [s for s in settings.sources if s.kind == "shopify"]
    return shopify[0].content_id if shopify else source.content_id


def pixel_config(settings: Settings, source: SourceSettings, endpoint: str, *,
                 tiktok_pixel: bool | None = None) -> dict[str, object]:
    """What the pixel needs; `tiktok_pixel` None: the TikTok Pixel rides along when there
    is a destination to take its pixel code from."""
    first = settings.destinations[0] if settings.destinations else None
    event_map = first.event_map if first else {}
    load_pixel = first is not None if tiktok_pixel is None else tiktok_pixel
    if load_pixel and first is None:
        raise PixelError("--tiktok-pixel: no destination to take a pixel code from")
    return {
        "endpoint": endpoint,
        "key": source.key.reveal(),  # a site key: public, it is in every page's source
        "contentId": content_id_setting(settings, source),
        # Each event's name at the destination, as the server will send it: the Pixel's
        # copy must carry the same name and event_id for TikTok to deduplicate.
        "names": {name: tiktok_name(name, event_map) for name in PIXEL_EVENTS},
        "tiktokPixel": (first.platform.pixel_code if load_pixel and first is not None
                        and first.type == "tiktok" else ""),
        "sessionDays": settings.sessions.session_cookie_days,
        "ttclidDays": settings.sessions.ttclid_cookie_days,
        "consentDays": CONSENT_COOKIE_DAYS,
    }


def render(config: dict[str, object], source_name: str) -> str:
    header = (f"// pixelrelay custom pixel for browser source {source_name!r}, posting to "
              f"{config['endpoint']}.\n"
              "// Paste in Shopify admin: Settings > Customer events > Add custom pixel.\n"
              "// Customer privacy: Permission \"Not required\", Data sale \"Data collected "
              "does not qualify\n// as data sale\": the code itself waits for the visitor's "
              "answer and marks sale-of-data\n// opt-outs as limited data use.\n")
    body = orjson.dumps(config, option=orjson.OPT_SORT_KEYS).decode()
    return header + _TEMPLATE.replace(CONFIG_MARK, body)


def pixel_code(settings: Settings, source_name: str, public_url: str, *,
               tiktok_pixel: bool | None = None) -> str:
    """The custom pixel's code for `source_name`, posting to `public_url`."""
    source = browser_source(settings, source_name)
    config = pixel_config(settings, source, public_endpoint(public_url),
                          tiktok_pixel=tiktok_pixel)
    return render(config, source.name)
