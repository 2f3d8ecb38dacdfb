"""Click ids as a landing URL carries them: a query parameter a destination type declares
(IdKey.url_param), taken as is, or one an id is made from (IdKey.built_from)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from pixelrelay.model import declared_ids

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


def landing_ids(url: str | None, clicked_at: int) -> dict[str, str]:
    """The declared ids a landing URL gives, {user key: value}: those it carries as they are,
    and those made from one of its parameters as clicked at `clicked_at` (Unix seconds)."""
    found: dict[str, str] = {}
    if not url:
        return found
    for spec in declared_ids().values():
        value = None
        if spec.url_param is not None:
            value = param_from_url(url, spec.url_param, spec.max_len)
        elif spec.built_from is not None:
            param, build = spec.built_from
            given = param_from_url(url, param, spec.max_len)
            value = build(given, clicked_at * 1000) if given is not None else None
        if value is not None:
            found[spec.key] = value
    return found
