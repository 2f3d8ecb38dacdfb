"""Typed readers of decoded JSON fields: each returns the value or records why it is refused.

Shared rules: null, "" (after trimming), [] and {} mean "not given" for an optional field;
a key the reader does not know is dropped with a Notice, never the event.
"""

from __future__ import annotations

import difflib
import math
from functools import lru_cache
from typing import Any

from pixelrelay.errors import Notice, NoticeKind, Problem
from pixelrelay.pipeline.pii import PERSONAL_KEY, safe_key

MAX_UNKNOWN_NOTICES = 20  # per object: a body of 10,000 junk keys must not flood the answer
# Tuples made once: `isinstance(v, list | dict)` builds its union at every call, which
# made it twice the cost of the check itself, and these run some 30 times an event.
NUMBER = (int, float)
CONTAINER = (list, dict)


def json_type(v: object) -> str:
    """The JSON name of a decoded value's type, for messages a sender can act on."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, NUMBER):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object" if isinstance(v, dict) else type(v).__name__


NUL = "\x00"
NUL_REASON = "contains a NUL character (U+0000), which cannot be stored"


def may_hold_nul(json_text: bytes) -> bool:
    """Whether a JSON text can decode to a key or string holding U+0000: JSON writes it only
    as this escape (an escaped backslash before "u0000" is a false alarm, never a miss)."""
    return b"\\u0000" in json_text


def nul_path(v: object, path: str = "") -> str | None:
    """The path of the first key or string holding U+0000, else None. PostgreSQL text and
    jsonb cannot hold it, so such an event is refused by name instead of failing its commit
    (which a sender would retry for ever)."""
    if isinstance(v, str):
        return path if NUL in v else None
    if isinstance(v, dict):
        for key, item in v.items():
            name = safe_key(key) if NUL not in str(key) else str(key)
            sub = f"{path}.{name}" if path else name
            if NUL in sub:
                return sub.replace(NUL, "\\u0000")
            found = nul_path(item, sub)
            if found is not None:
                return found
    elif isinstance(v, list):
        for i, item in enumerate(v):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def is_blank(v: object) -> bool:
    """null, a blank string, an empty array or object: the same as an absent field."""
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    return isinstance(v, CONTAINER) and not v


def unknown_keys(obj: dict[Any, Any], prefix: str, known: frozenset[str],
                 notices: list[Notice]) -> None:
    """Record a Notice per key outside `known` (with the nearest known name as a hint).

    The caller reads only known keys, so unknown ones are dropped by not being read.
    """
    if obj.keys() <= known:  # the common case, checked in C
        return
    extra = [k for k in obj if k not in known]
    for k in extra[:MAX_UNKNOWN_NOTICES]:
        key = safe_key(k)
        hint = None if key == PERSONAL_KEY else nearest(key, known)
        notices.append(Notice(prefix + key, "unknown field; dropped" + (
            f" (did you mean {prefix}{hint}?)" if hint else ""), NoticeKind.UNKNOWN_FIELD))
    if len(extra) > MAX_UNKNOWN_NOTICES:
        notices.append(Notice(prefix + "*", f"{len(extra) - MAX_UNKNOWN_NOTICES} more unknown "
                                            "fields; dropped", NoticeKind.UNKNOWN_FIELD))


# difflib takes some 40 µs a key, more than parsing the whole event; a sender repeats the
# same unknown keys in every event, so the hint is worked out once per key.
@lru_cache(maxsize=1024)
def nearest(key: str, known: frozenset[str]) -> str | None:
    """The known name closest to an unknown key, if any is close."""
    hint = difflib.get_close_matches(key, sorted(known), n=1)
    return hint[0] if hint else None


def opt_str(v: object, path: str, cap: int, p: list[Problem], truncate: bool = False) -> str | None:
    """An optional string: null/blank ("", [], {}) is absent; over-long ones are cut or
    refused."""
    if not isinstance(v, str):
        if v is not None and not (isinstance(v, CONTAINER) and not v):
            p.append(Problem(path, f"must be a string, got {json_type(v)}"))
        return None
    s = v.strip()
    if len(s) > cap:
        if truncate:
            return s[:cap]
        p.append(Problem(path, f"is longer than {cap} characters"))
        return None
    return s or None


def id_str(v: object, path: str, p: list[Problem], cap: int = 256) -> str | None:
    """Ids must reach TikTok as strings (it refuses numbers with 40002): ints are converted."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return opt_str(v, path, cap, p)


def text(v: object, path: str, p: list[Problem], cap: int = 1000) -> str | None:
    """A free-text field TikTok wants as a string: numbers are converted, others refused."""
    if isinstance(v, NUMBER) and not isinstance(v, bool) and math.isfinite(v):
        return str(v)
    return opt_str(v, path, cap, p, truncate=True)


def boolean(v: object, path: str, p: list[Problem]) -> bool | None:
    if is_blank(v):
        return None
    if isinstance(v, bool):
        return v
    p.append(Problem(path, f"must be true or false, got {json_type(v)}"))
    return None


def amount(v: object, path: str, p: list[Problem]) -> float | None:
    """A non-negative finite number; numeric strings ("129.95") are accepted."""
    x: float | None = None
    if isinstance(v, NUMBER) and not isinstance(v, bool):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            x = None
    if x is None or not math.isfinite(x) or x < 0:
        p.append(Problem(path, "must be a non-negative number without currency symbol or "
                               "thousands separator, such as 129.95"))
        return None
    return x


MAX_COUNT = 2**53  # larger counts are no real quantity, and would not survive JSON readers


def count(v: object, path: str, p: list[Problem]) -> int | None:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, str) and v.strip().isascii() and v.strip().isdigit() and len(
            v.strip()) <= 16:
        v = int(v.strip())
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_COUNT:
        p.append(Problem(path, "must be a non-negative integer"))
        return None
    return v
