"""The nesting limit under hypothesis: nesting.loads refuses exactly the documents deeper than
MAX_DEPTH, whatever the brackets inside their strings (its counting shortcut must never let
a deep document through), and names a path that leads to a value that deep."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelrelay.pipeline import nesting
from tests.fuzz.strategies import FUZZ, deep, dumps, text

# Strings made of the very sequences the shortcut counts, to try to fool it.
junk = st.lists(st.sampled_from(["{", "}", "[", "]", "},{", "}, {", "],[", ",", '"', "\\"]),
                max_size=40).map("".join)
keys = junk | text
# Values that come back from JSON as they went in (no integers past 64 bits, no NaN).
leaves = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
          | st.floats(allow_nan=False, allow_infinity=False) | keys)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=30)
chains = st.builds(deep, st.integers(1, 80), st.lists(st.sampled_from("{["), min_size=1,
                                                        max_size=3), junk, values)
documents = st.recursive(chains | values, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(keys, inner, max_size=5), max_leaves=8)


def depth(v: object) -> int:
    """Levels of objects and arrays, the document itself being 1 (iterative: no limit)."""
    most, stack = 0, [(v, 1)]
    while stack:
        x, level = stack.pop()
        if isinstance(x, dict | list):
            most = max(most, level)
            stack += [(y, level + 1) for y in (x.values() if isinstance(x, dict) else x)]
    return most


def follow(doc: Any, path: nesting.Path) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@FUZZ
@given(doc=documents, compact=st.booleans())
def test_loads_refuses_exactly_what_is_too_deep(doc: Any, compact: bool) -> None:
    # Compact as orjson and browsers write it, or with the spaces of Python's json.dumps.
    text = orjson.dumps(doc) if compact and depth(doc) < 250 else dumps(doc)
    if depth(doc) <= nesting.MAX_DEPTH:
        assert nesting.loads(text) == doc
        return
    with pytest.raises(nesting.TooDeep) as refused:
        nesting.loads(text)
    path = refused.value.path
    assert len(path) == nesting.MAX_DEPTH  # the first value past the limit, no further
    assert isinstance(follow(doc, path), dict | list)
    assert str(refused.value) == f"{refused.value.field}: {nesting.REASON}"


@pytest.mark.parametrize("levels", [31, 32, 33, 300, 1000])
def test_the_limit_counts_the_document_as_level_one(levels: int) -> None:
    text = b'{"a":' * levels + b"1" + b"}" * levels
    if levels <= nesting.MAX_DEPTH:
        assert nesting.too_deep(nesting.loads(text)) is None
    else:
        with pytest.raises(nesting.TooDeep) as refused:
            nesting.loads(text)
        assert refused.value.field == ".".join(["a"] * nesting.MAX_DEPTH)


def test_paths_are_written_as_each_answer_wants_them() -> None:
    path: nesting.Path = ("events", 1, "properties", "a")
    assert nesting.TooDeep(path).field == "events[1].properties.a"
    assert nesting.dotted(("data", 0, "properties")) == "data.0.properties"
