"""Browser source decisions, pure: click and browser ids, cookies, CORS, the tag's embedded
config."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from pixelrelay.destinations import REGISTRY, Plugin, id_names
from pixelrelay.destinations.plugin import BrowserHit
from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.model import Consent, ConsentState, IdKey
from pixelrelay.pipeline.clickid import param_from_url

SESSION_COOKIE = "prx_sid"
CLICK_COOKIE_PREFIX = "prx_"  # + a declared click param: the gateway's cookie of that click
_SESSION_ID = re.compile(r"^s_[0-9a-f]{32}$")
_COOKIE_SAFE = re.compile(r"^[A-Za-z0-9._~-]{1,512}$")
CONFIG_MARK = "/*__PIXELRELAY_CONFIG__*/{}"
BRIDGES_MARK = "/*__PIXELRELAY_BRIDGES__*/"

def same_site(host_a: str, host_b: str) -> bool:
    """Equal hosts, or one a subdomain of the other (shop.example / www.shop.example).

    An approximation of the registrable domain without the public suffix list; it errs
    towards "not same site", which only means a click id is not taken from a referrer.
    """
    a, b = host_a.lower().rstrip("."), host_b.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def click_from_page(page_url: str | None, referrer: str | None, param: str,
                    max_len: int = 512) -> str | None:
    """The landing URL's click id `param`, else a same-site referrer's (a redirect that
    dropped it)."""
    found = param_from_url(page_url, param, max_len)
    if found is not None or not page_url or not referrer:
        return found
    try:
        page_host, ref_host = urlsplit(page_url).hostname, urlsplit(referrer).hostname
    except ValueError:
        return None
    if page_host and ref_host and same_site(page_host, ref_host):
        return param_from_url(referrer, param, max_len)
    return None


def click_cookie(param: str) -> str:
    """The gateway's own cookie of a landing click id: prx_<param> (a visitor's cookie set by
    an older version under that name is read the same)."""
    return CLICK_COOKIE_PREFIX + param


def new_session_id() -> str:
    return "s_" + secrets.token_hex(16)


def valid_session_id(value: str | None) -> bool:
    return value is not None and _SESSION_ID.match(value) is not None


def choose_session_id(cookie: str | None, hint: str | None) -> str:
    """The cookie's session; without one, the id the tag proposed for its page load (so hits
    racing before the first Set-Cookie share a session); else a new one."""
    if cookie is not None and valid_session_id(cookie):
        return cookie
    if hint is not None and valid_session_id(hint):
        return hint
    return new_session_id()


def cookie_value_ok(value: str) -> bool:
    """Only values that need no quoting go into Set-Cookie (a click id is base64url-like)."""
    return _COOKIE_SAFE.match(value) is not None


def kept_click_id(cookie: str | None, claimed: str | None) -> str | None:
    """The landing click id kept for the visitor: the gateway's own cookie, else the one the
    body hands in as `user.<key>` (a pixel that keeps it in the shop's first-party cookie:
    its hits carry no cookie of ours). Only a value that could have been a cookie counts."""
    for value in (cookie, claimed):
        if value is not None and cookie_value_ok(value):
            return value
    return None


def build_cookie(name: str, value: str, max_age_s: int, *, secure: bool, domain: str = "",
                 http_only: bool = True) -> str:
    """A first-party Set-Cookie value. Set by the server, so Safari's 7-day cap on cookies
    written by script does not apply; Lax so a click from the ad still carries it."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age_s}", "SameSite=Lax"]
    if domain:
        parts.append(f"Domain={domain}")
    if secure:
        parts.append("Secure")
    if http_only:
        parts.append("HttpOnly")
    return "; ".join(parts)


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """An empty allow-list admits any origin (as /v1/events does for site keys)."""
    if not allowed:
        return True
    return origin is not None and origin.rstrip("/") in {a.rstrip("/") for a in allowed}


OPAQUE_ORIGIN = "null"  # what a sandboxed frame (Shopify's custom pixels) sends as Origin


def page_origin(url: object) -> str | None:
    """scheme://host[:port] of an http(s) URL, lower-cased; None for anything else."""
    if not isinstance(url, str) or len(url) > 4096:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def hit_origin(header: str | None, claimed: object, page_url: object) -> str | None:
    """The origin a hit is judged by. A browser's Origin header, as it is; from an opaque
    origin (`null`: a sandboxed frame such as Shopify's custom-pixel sandbox) the site the
    body names, `origin` or else the page URL's. A null origin proves nothing, but neither
    does any Origin header outside a browser: the allow-list keeps other sites' pages from
    using the key, and a frame on another site could always claim to be the shop."""
    if header != OPAQUE_ORIGIN:
        return header
    return page_origin(claimed) or page_origin(page_url)


def cors_headers(origin: str | None) -> dict[str, str]:
    """Credentialed CORS: the exact origin, never "*", and Vary so caches keep them apart.
    An opaque origin gets "*" without credentials: its requests carry no cookies (the
    sandbox sends `credentials: 'omit'`), and "*" is what such a request needs."""
    headers = {"Vary": "Origin"}
    if origin == OPAQUE_ORIGIN:
        headers["Access-Control-Allow-Origin"] = "*"
    elif origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def preflight_headers(origin: str) -> dict[str, str]:
    return {**cors_headers(origin),
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type, X-Pixelrelay-Key",
            "Access-Control-Max-Age": "600"}


def browser_types(destinations: Sequence[DestinationSettings]
                  ) -> list[tuple[Plugin, DestinationSettings]]:
    """Each configured destination type once, with its first destination (whose names its
    Pixel follows, as the server's first destination of a type is the one a page pairs
    with), in the order of the config."""
    out: dict[str, tuple[Plugin, DestinationSettings]] = {}
    for d in destinations:
        if d.type not in out and d.type in REGISTRY:
            out[d.type] = (REGISTRY[d.type], d)
    return list(out.values())


def declared_cookies(destinations: Sequence[DestinationSettings]) -> list[tuple[str, str]]:
    """(cookie, user key) for every browser id the configured destination types declare."""
    return [pair for plugin, _ in browser_types(destinations)
            for pair in plugin.browser_cookies]


def tag_config(destinations: Sequence[DestinationSettings], *,
               consent_required: bool = False, page_views: bool = False) -> dict[str, object]:
    """What the tag needs to fire each Pixel exactly as the server will send: the name table
    derived event_ids follow (the first destination's), the cookies and click ids the
    configured types declare, and each bridge's own table."""
    exact, keyed = id_names(destinations).web_table()
    types = browser_types(destinations)
    return {"map": exact, "keys": keyed, "consentRequired": consent_required,
            "pageViews": page_views,
            "cookies": [list(pair) for pair in declared_cookies(destinations)],
            "given": [param for plugin, _ in types for param in plugin.click_params],
            "bridges": {plugin.type: plugin.bridge.table(d.event_map)
                        for plugin, d in types if plugin.bridge is not None}}


@dataclass(frozen=True)
class DeclaredIds:
    """The click and browser ids the browser source keeps by their declaration: those of
    every registered type without a session_ids hook (whose ids a session keeps whatever
    the config, as a destination added later finds them there)."""

    clicks: tuple[IdKey, ...]  # ids a landing URL's query parameter (url_param) carries
    cookies: tuple[tuple[str, str, int], ...]  # (its Pixel's cookie, user key, max length)


def declared_session_ids() -> DeclaredIds:
    plugins = [p for p in REGISTRY.values() if p.session_ids is None]
    limits = {k.key: k.max_len for p in plugins for k in p.ids}
    return DeclaredIds(
        tuple(k for p in plugins for k in p.ids if k.url_param is not None),
        tuple((cookie, key, limits.get(key, 512)) for p in plugins
              for cookie, key in p.browser_cookies))


def ids_from_hit(ids: DeclaredIds, url: str | None, referrer: str | None,
                 cookies: Mapping[str, str], user: Mapping[str, Any]) -> dict[str, str]:
    """The declared ids a browser hit shows (unscrubbed): a click id from the landing URL (or
    a same-site referrer), else the gateway's cookie of it, else the body's user.<key>; a
    browser id from its Pixel's cookie, else the body's user.<key>."""
    out: dict[str, str] = {}
    for spec in ids.clicks:
        assert spec.url_param is not None
        claimed = user.get(spec.key)
        value = (click_from_page(url, referrer, spec.url_param, spec.max_len)
                 or kept_click_id(cookies.get(click_cookie(spec.url_param)),
                                  claimed if isinstance(claimed, str) else None))
        if value:
            out[spec.key] = value
    for cookie, key, max_len in ids.cookies:
        given = cookies.get(cookie) or user.get(key)
        if isinstance(given, str) and given and len(given) <= max_len:
            out[key] = given
    return out


@dataclass(frozen=True)
class SessionIdHooks:
    """The configured types' Plugin.session_ids hooks and the click params they read."""

    hooks: tuple[Callable[[BrowserHit], dict[str, str]], ...]
    click_params: tuple[str, ...]


def session_id_hooks(destinations: Sequence[DestinationSettings]) -> SessionIdHooks:
    types = [p for p, _ in browser_types(destinations) if p.session_ids is not None]
    return SessionIdHooks(tuple(p.session_ids for p in types if p.session_ids is not None),
                          tuple(param for p in types for param in p.click_params))


def has_click_param(url: str, params: Sequence[str]) -> bool:
    """Whether a URL's query names one of `params` (a cheap test before a session read)."""
    query = url.partition("?")[2].partition("#")[0]
    return any(f"{p}=" in query for p in params if p)


def with_bridges(template: str, destinations: Sequence[DestinationSettings]) -> str:
    """A tag template with the bridges of the configured destination types put in at its
    mark (inside the tag, before the page's queued commands run)."""
    scripts = [plugin.bridge.script for plugin, _ in browser_types(destinations)
               if plugin.bridge is not None]
    return template.replace(BRIDGES_MARK, "\n".join(scripts))


def render_tag(template: str, config: Mapping[str, object]) -> tuple[bytes, str]:
    """The tag with its config embedded, and a strong ETag of exactly those bytes."""
    body = template.replace(CONFIG_MARK, orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
                            .decode()).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


CONSENT_SOURCES = ("explicit", "consent_mode", "shopify_privacy")
_STATES = {"granted": ConsentState.GRANTED, "denied": ConsentState.DENIED,
           True: ConsentState.GRANTED, False: ConsentState.DENIED}


def hit_consent(raw: object, source: object) -> tuple[Consent | None, str]:
    """The consent a tag hit carries (the visitor's current answer) and how it was given:
    "explicit" (pixelrelay('consent')), "consent_mode" (Google Consent Mode) or
    "shopify_privacy" (Shopify's Customer Privacy API, read by the custom pixel). Read
    leniently: an unreadable answer is no answer, and the event itself is still validated."""
    how = source if isinstance(source, str) and source in CONSENT_SOURCES else "explicit"
    if not isinstance(raw, dict):
        return None, how

    def state(key: str) -> ConsentState | None:
        v = raw.get(key)
        if isinstance(v, str):
            return _STATES.get(v.strip().lower())
        return _STATES.get(v) if isinstance(v, bool) else None

    consent = Consent(marketing=state("marketing"), ad_user_data=state("ad_user_data"),
                      ad_personalization=state("ad_personalization"),
                      region=_region(raw.get("region")))
    return (None if consent.is_empty else consent), how


def _region(v: object) -> str | None:
    return v.strip().upper() if isinstance(v, str) and 0 < len(v.strip()) <= 8 else None
