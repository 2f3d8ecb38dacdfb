"""The import CSV header (documented in the README) and one CSV row -> a SPEC §3.3 event object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pixelrelay.destinations import REGISTRY
from pixelrelay.errors import Problem
from pixelrelay.pipeline.readers import nearest

# column -> (section of the event object or "" for the top level, key there)
COLUMNS: dict[str, tuple[str, str]] = {
    "event": ("", "event"), "event_id": ("", "event_id"), "timestamp": ("", "timestamp"),
    "source": ("", "source"), "session_id": ("", "session_id"),
    "order_source": ("", "order_source"),
    **{k: ("user", k) for k in ("email", "phone", "external_id")},
    # The click and browser ids the destination types declare, each a column by its key.
    **{k.key: ("user", k.key) for p in REGISTRY.values() for k in p.ids},
    **{k: ("user", k) for k in ("ip", "user_agent", "locale", "first_name", "last_name",
                                "zip_code", "city", "state", "country")},
    "test_event_code": ("", "test_event_code"),
    "lead_id": ("lead", "lead_id"), "lead_event_source": ("lead", "lead_event_source"),
    "url": ("page", "url"), "referrer": ("page", "referrer"),
    **{k: ("properties", k) for k in ("value", "currency", "order_id", "content_ids",
                                      "content_type", "num_items", "query", "description")},
    **{f"consent_{k}": ("consent", k) for k in ("marketing", "ad_user_data",
                                                "ad_personalization", "region")},
}
LIST_COLUMNS = frozenset({"email", "phone", "external_id", "content_ids"})
LIST_SEPARATOR = "|"  # several emails or content ids in one cell: a@x.com|b@y.com
CUSTOM_PREFIX = "properties."  # properties.<name>: a custom property, passed as a string


def normalise_header(fields: Sequence[str]) -> list[str]:
    """Trim and lower-case the column names (custom property names keep their case)."""
    out = []
    for f in fields:
        name = f.strip()
        if name.lower().startswith(CUSTOM_PREFIX):
            out.append(CUSTOM_PREFIX + name[len(CUSTOM_PREFIX):])
        else:
            out.append(name.lower())
    return out


def check_header(columns: Sequence[str]) -> list[Problem]:
    """Every problem of the header row; unknown columns are errors, since a typo such as
    `emial` would otherwise drop a match key from every row without a word."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, name in enumerate(columns, start=1):
        where = f"header column {i} ({name!r})"
        if name in seen:
            problems.append(Problem(where, "appears twice"))
        seen.add(name)
        if name in COLUMNS or (name.startswith(CUSTOM_PREFIX) and len(name) > len(
                CUSTOM_PREFIX)):
            continue
        hint = nearest(name, frozenset(COLUMNS))
        problems.append(Problem(where, "unknown column" + (
            f"; did you mean {hint!r}?" if hint else
            f" (known: {', '.join(COLUMNS)}, or properties.<name>)")))
    if "event" not in seen:
        problems.append(Problem("header", "needs an 'event' column"))
    return problems


def row_to_event(row: Mapping[str, str]) -> dict[str, Any]:
    """One data row (header already checked) as the JSON event object the API takes.

    Empty cells are absent. Values stay strings where the API accepts strings (value,
    timestamp); the API's own validation then judges them exactly as it judges JSON.
    """
    event: dict[str, Any] = {}
    for column, cell in row.items():
        text = cell.strip()
        if not text:
            continue
        if column.startswith(CUSTOM_PREFIX):
            event.setdefault("properties", {})[column[len(CUSTOM_PREFIX):]] = text
            continue
        section, key = COLUMNS[column]
        value: Any = text
        if column in LIST_COLUMNS:
            items = [x.strip() for x in text.split(LIST_SEPARATOR) if x.strip()]
            value = items[0] if len(items) == 1 and column != "content_ids" else items
        elif column == "num_items" and text.isdigit():
            value = int(text)
        if section:
            event.setdefault(section, {})[key] = value
        else:
            event[key] = value
    return event
