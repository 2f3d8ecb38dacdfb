"""The Shopify Customer Events custom pixel, written for one browser source: the code a
merchant pastes in Settings -> Customer events -> Add custom pixel, with the gateway's
public URL, the source's site key, the first destination's event names and the bridges of
the configured destination types (each loading its platform's Pixel in the sandbox)."""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

import orjson

from pixelrelay.config import Settings, SourceSettings
from pixelrelay.destinations import REGISTRY, id_names
from pixelrelay.errors import PixelrelayError
from pixelrelay.sources.browser_rules import BRIDGES_MARK, CONFIG_MARK, browser_types

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


def loaded_pixels(settings: Settings, pixels: bool | None) -> dict[str, tuple[str, str]]:
    """type -> (its web pixel id, the bridge script) of each Pixel the custom pixel loads:
    one per configured destination type with a bridge, its first destination's id. `pixels`
    None: whenever there is a destination."""
    dests = settings.destinations
    if pixels and not dests:
        raise PixelError("--pixels (--tiktok-pixel): no destination to take a pixel id from")
    if pixels is False:
        return {}
    return {plugin.type: (plugin.source_ids(d).get("web", ""), plugin.bridge.script)
            for plugin, d in browser_types(dests)
            if plugin.bridge is not None and plugin.source_ids(d).get("web")}


def pixel_config(settings: Settings, source: SourceSettings, endpoint: str, *,
                 pixels: bool | None = None) -> dict[str, object]:
    """What the pixel needs; `pixels` None: each configured type's Pixel rides along."""
    dests = settings.destinations
    names = id_names(dests)
    loaded = loaded_pixels(settings, pixels)
    return {
        "endpoint": endpoint,
        "key": source.key.reveal(),  # a site key: public, it is in every page's source
        "contentId": content_id_setting(settings, source),
        # Each event's name at the first destination, as the server derives event_ids from
        # it: the Pixels' copies must carry the server's event_id to be deduplicated.
        "names": {name: names(name) for name in PIXEL_EVENTS},
        "pixels": {t: pixel_id for t, (pixel_id, _) in loaded.items()},
        "bridges": {plugin.type: plugin.bridge.table(d.event_map)
                    for plugin, d in browser_types(dests)
                    if plugin.bridge is not None and plugin.type in loaded},
        # Every registered type's cookies, not only the configured ones': the pasted code
        # outlives the config, and a destination added later finds its ids on the sessions.
        "cookies": [list(pair) for plugin in REGISTRY.values()
                    for pair in plugin.browser_cookies],
        # The landing click ids kept in the shop's cookie prx_<param> ([param, user key]).
        "clicks": [[k.url_param, k.key] for plugin in REGISTRY.values() for k in plugin.ids
                   if k.url_param is not None],
        "sessionDays": settings.sessions.session_cookie_days,
        "clickDays": settings.sessions.click_id_cookie_days,
        "consentDays": CONSENT_COOKIE_DAYS,
    }


def render(config: dict[str, object], source_name: str, bridges: str = "") -> str:
    header = (f"// pixelrelay custom pixel for browser source {source_name!r}, posting to "
              f"{config['endpoint']}.\n"
              "// Paste in Shopify admin: Settings > Customer events > Add custom pixel.\n"
              "// Customer privacy: Permission \"Not required\", Data sale \"Data collected "
              "does not qualify\n// as data sale\": the code itself waits for the visitor's "
              "answer and marks sale-of-data\n// opt-outs as limited data use.\n")
    body = orjson.dumps(config, option=orjson.OPT_SORT_KEYS).decode()
    return header + _TEMPLATE.replace(CONFIG_MARK, body).replace(BRIDGES_MARK, bridges)


def custom_pixel(settings: Settings, source_name: str, public_url: str, *,
               pixels: bool | None = None, tiktok_pixel: bool | None = None) -> str:
    """The custom pixel's code for `source_name`, posting to `public_url`. `tiktok_pixel`
    is the former name of `pixels` (the CLI's --tiktok-pixel)."""
    pixels = tiktok_pixel if pixels is None else pixels
    source = browser_source(settings, source_name)
    config = pixel_config(settings, source, public_endpoint(public_url), pixels=pixels)
    scripts = "\n".join(script for _, script in loaded_pixels(settings, pixels).values())
    return render(config, source.name, scripts)
