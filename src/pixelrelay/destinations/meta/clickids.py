"""Meta's click and browser ids. `fbc` = `fb.<subdomain index>.<ms>.<fbclid>`, built server-side
from an fbclid when the browser has no `_fbc` cookie (Meta: "obtain the parameter
server-side ... from the HTTP request URL's query string"); what a browser hit gives its
session (`session_ids`: fbc, and fbp from the `_fbp` cookie)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from pixelrelay.destinations.plugin import BrowserHit
from pixelrelay.model import IdKey

# Meta's Parameter Builder: "generated server-side without a cookie -> use 1" (example.com).
SERVER_SUBDOMAIN_INDEX = 1


def fbc_from_fbclid(fbclid: str, first_seen_ms: int,
                    subdomain_index: int = SERVER_SUBDOMAIN_INDEX) -> str:
    """The fbclid exactly as it came (it is case-sensitive: never lower-cased, hashed or
    decoded twice); the time in milliseconds (seconds are a known bug class)."""
    if not fbclid:
        raise ValueError("fbclid: empty; Meta says never to invent an fbc without one")
    return f"fb.{subdomain_index}.{first_seen_ms}.{fbclid}"


def fbclid_of(fbc: str) -> str | None:
    """The click id inside an fbc (its 4th dot segment; Parameter Builder values may carry a
    5th, an appendix), or None when it is not shaped `fb.<n>.<ms>.<id>`."""
    parts = fbc.split(".")
    if len(parts) not in (4, 5) or parts[0] != "fb" or not parts[1].isdigit() \
            or not parts[2].isdigit() or not parts[3]:
        return None
    return parts[3]


def current_fbc(cookie_fbc: str | None, url_fbclid: str | None, now_ms: int) -> str | None:
    """The fbc to send: the cookie's, unless the landing URL carries a different fbclid (a
    new click: keeping the old one would credit the wrong ad); built from the URL when there
    is no cookie."""
    if url_fbclid and (cookie_fbc is None or fbclid_of(cookie_fbc) != url_fbclid):
        return fbc_from_fbclid(url_fbclid, now_ms)
    return cookie_fbc or None


# Cookie-safe, as Meta's cookies are (fbclid is base64url-like); longer is not Meta's.
_VALUE = re.compile(r"^[A-Za-z0-9._~-]{1,500}$")
_FBP = re.compile(r"^fb\.\d+\.\d+\.\d+(\.[A-Za-z0-9_-]+)?$")
CLICK_PARAM = "fbclid"
FBC_COOKIE, FBP_COOKIE = "_fbc", "_fbp"
def fbc_from_url_param(fbclid: str, clicked_ms: int) -> str | None:
    """A server event's fbc from the fbclid of its page URL (IdKey.built_from); None for a
    value no cookie could hold, which Meta would discard."""
    return fbc_from_fbclid(fbclid, clicked_ms) if _VALUE.match(fbclid) else None


IDS = (
    IdKey("fbc", "Meta's click id (the _fbc cookie, fb.1.<ms>.<fbclid>), sent to Meta as "
                 "given; made from an fbclid in page.url when absent.", match_key_bit=12,
          built_from=(CLICK_PARAM, fbc_from_url_param)),
    IdKey("fbp", "The _fbp cookie of Meta's Pixel, sent to Meta as given.", match_key_bit=13),
)


def fbclid_from_url(url: str | None) -> str | None:
    """The first usable `fbclid` query parameter of a landing URL, exactly as it came."""
    if not url or CLICK_PARAM not in url:
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for value in parse_qs(query).get(CLICK_PARAM, ()):
        if _VALUE.match(value):
            return value
    return None


def _given(*values: object) -> str | None:
    for v in values:
        if isinstance(v, str) and _VALUE.match(v):
            return v
    return None


def session_ids(hit: BrowserHit) -> dict[str, str]:
    """Meta's ids a browser hit gives its session: `fbc` from the `_fbc` cookie (the
    request's, else the one the tag read) or the session's, replaced by one built from a
    new fbclid in the landing URL (or one a host handed in); `fbp` from the `_fbp` cookie.
    Malformed values are left out rather than sent for Meta to discard."""
    out: dict[str, str] = {}
    known_fbc = _given(hit.cookies.get(FBC_COOKIE), hit.user.get("fbc"), hit.previous.get("fbc"))
    if known_fbc is not None and fbclid_of(known_fbc) is None:
        known_fbc = None
    # A host that knows the landing better (a sandboxed pixel) may hand the fbclid in.
    fbclid = fbclid_from_url(hit.url) or _given(hit.user.get(CLICK_PARAM))
    fbc = current_fbc(known_fbc, fbclid, hit.now_ms)
    if fbc is not None:
        out["fbc"] = fbc
    fbp = _given(hit.cookies.get(FBP_COOKIE), hit.user.get("fbp"))
    if fbp is not None and _FBP.match(fbp):
        out["fbp"] = fbp
    return out
