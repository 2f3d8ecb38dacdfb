"""The sources' keys: which configured source a presented key opens, and its rate limit."""

from __future__ import annotations

import hmac
import math

from starlette.responses import Response

from pixelrelay.config import SourceSettings
from pixelrelay.delivery.throttle import TokenBucket
from pixelrelay.web.http import problem_response


def find_source(sources: tuple[SourceSettings, ...], kind: str,
                presented: str | None) -> SourceSettings | None:
    """The source of `kind` whose key matches, compared in constant time against every key."""
    if not presented:
        return None
    found: SourceSettings | None = None
    given = presented.encode()
    for source in sources:
        if source.kind == kind and source.key and hmac.compare_digest(
                source.key.reveal().encode(), given):
            found = source
    return found


def source_limits(sources: tuple[SourceSettings, ...]) -> dict[str, TokenBucket]:
    """One bucket per rate-limited source; a second's worth of events may come at once."""
    return {s.name: TokenBucket(s.rate_limit) for s in sources if s.rate_limit > 0}


def rate_limited(limits: dict[str, TokenBucket], source: SourceSettings,
                 events: int) -> Response | None:
    """None if `source` may send `events` more now, else the 429 saying when to retry."""
    bucket = limits.get(source.name)
    wait = bucket.try_take(events) if bucket is not None else 0.0
    if wait <= 0:
        return None
    return problem_response(429, "rate_limited",
                            f"source {source.name} is limited to {source.rate_limit:g} events/s",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
