"""How deep a JSON document may nest, enforced where it is decoded.

Every endpoint and the importer decode through `loads`, so nothing after the decoder (the
sources, the parser, the scrubbers, the queue's and TikTok's encoders, which give up at 254
levels) ever holds a structure deep enough to exhaust a recursion limit: a document 300
levels deep used to be accepted and then fail as a 500 when its event was encoded.
"""

from __future__ import annotations

from typing import Any

import orjson

# TikTok's own objects are at most 3 deep (properties.contents[i]); 32 leaves room for any
# custom property a real sender has, and the walk below never recurses further than this.
MAX_DEPTH = 32
REASON = f"nested deeper than {MAX_DEPTH} levels"
_CONTAINER = (dict, list)  # what orjson decodes objects and arrays to

Path = tuple[str | int, ...]


class TooDeep(ValueError):
    """A document nests deeper than MAX_DEPTH; `path` leads to the first value too deep."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{self.field}: {REASON}")

    @property
    def field(self) -> str:
        """The path as the readers write one: `events[0].properties.a`."""
        return dotted(self.path, "[{}]")


def dotted(path: Path, index: str = ".{}") -> str:
    """`path` with keys joined by dots and array indexes written as `index` formats them
    (TikTok's messages say `data.0.properties`, ours `events[0].properties`)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += index.format(part)
        else:
            out += f".{part}" if out else part
    return out.lstrip(".")


def loads(text: bytes | str) -> Any:
    """orjson.loads, refusing a document nested deeper than MAX_DEPTH levels (the document
    itself is level 1) with TooDeep. orjson.JSONDecodeError passes through."""
    doc = orjson.loads(text)
    if not _surely_shallow(text):
        path = too_deep(doc)
        if path is not None:
            raise TooDeep(path)
    return doc


_COUNTED_UP_TO = 16 * 1024  # past this the counts cost as much as the walk (a batch's size)


def _surely_shallow(text: bytes | str) -> bool:
    """True if C-speed counts over the text prove it nests no deeper than MAX_DEPTH, which
    spares a single event the walk (10 us for one with 40 contents).

    Each level opens a bracket of its own, so a text with at most MAX_DEPTH `{` and `[` is
    shallow. So is one where that count minus the `{` that continue a run of objects in an
    array (`},{`, or `}, {` as Python writes it) is at most MAX_DEPTH: of a run of siblings
    only one lies on any path, and a `},{` inside a string brings its own `{` to the count.
    """
    if not isinstance(text, bytes):
        return False  # the importer's lines: no hot path
    count = text.count
    brackets = count(b"{") + count(b"[")
    return brackets <= MAX_DEPTH or (
        len(text) <= _COUNTED_UP_TO
        and brackets - count(b"},{") - count(b"}, {") <= MAX_DEPTH)


def too_deep(doc: object, limit: int = MAX_DEPTH) -> Path | None:
    """The path of the first object or array nested deeper than `limit` levels, else None."""
    # Level by level, each a list comprehension: half the time of a recursive walk (0.6 ms
    # against 1.1 for 500 events), and it holds no more than the containers of one level.
    level: list[Any] = [doc] if isinstance(doc, _CONTAINER) else []
    for _ in range(limit):
        level = [x for c in level for x in (c.values() if c.__class__ is dict else c)
                 if x.__class__ is dict or x.__class__ is list]
        if not level:
            return None
    found = _path(doc, limit)
    return None if found is None else tuple(reversed(found))


def _path(v: object, left: int) -> list[str | int] | None:
    """The reversed path below `v` to the first container past the limit (`left` levels
    remain, `v`'s own included), else None; recursion is bounded by `left`."""
    if not isinstance(v, _CONTAINER):
        return None
    if left == 0:
        return []
    pairs = v.items() if isinstance(v, dict) else enumerate(v)
    for key, item in pairs:
        found = _path(item, left - 1)
        if found is not None:
            found.append(key if isinstance(key, int) else str(key)[:100])
            return found
    return None
