"""TikTok's click id (`ttclid`) as a landing URL carries it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

MAX_TTCLID = 512  # the parser's limit for user.ttclid


def ttclid_from_url(url: str | None) -> str | None:
    """The first non-empty `ttclid` query parameter of `url`, else None."""
    if not url or "ttclid" not in url:
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for value in parse_qs(query).get("ttclid", ()):
        value = value.strip()
        if 0 < len(value) <= MAX_TTCLID:
            return value
    return None
