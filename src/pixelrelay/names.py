"""Event-name forms every destination shares: the comparison key and snake_case."""

from __future__ import annotations

import re
from functools import lru_cache

_SEPARATORS = re.compile(r"[\s_\-.:/]+")
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


@lru_cache(maxsize=4096)  # the same few names recur on every event
def name_key(name: str) -> str:
    """The comparison form of an event name: lower-case, without spaces or separators."""
    return _SEPARATORS.sub("", name).lower()


def snake_case(name: str) -> str:
    """AddToCart -> add_to_cart, "Order Completed" -> order_completed."""
    spaced = _WORD_BOUNDARY.sub("_", name)
    return _NON_ALNUM.sub("_", spaced).strip("_").lower()
