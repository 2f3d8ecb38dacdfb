"""Meta's click id cookie value: `fbc` = `fb.<subdomain index>.<ms>.<fbclid>`, built server-side
from an fbclid when the browser has no `_fbc` cookie (Meta: "obtain the parameter
server-side ... from the HTTP request URL's query string")."""

from __future__ import annotations

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
