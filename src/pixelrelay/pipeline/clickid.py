"""Click ids as a landing URL carries them: a query parameter a destination type declares
(IdKey.url_param), taken as is."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

MAX_CLICK_ID = 512  # the longest click id taken from a URL


def param_from_url(url: str | None, param: str, max_len: int = MAX_CLICK_ID) -> str | None:
    """The first non-empty `param` query parameter of `url`, else None."""
    if not url or param not in url:
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for value in parse_qs(query).get(param, ()):
        value = value.strip()
        if 0 < len(value) <= max_len:
            return value
    return None
