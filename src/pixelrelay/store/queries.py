"""Named SQL queries: each dialect's .sql files under store/sql/<dialect>/, one statement
per `-- name: <query>` section, so the SQL stays readable SQL."""

from __future__ import annotations

from functools import cache
from importlib import resources


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` sections into {x: sql}."""
    queries: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line.startswith("-- name:"):
            name = line.split(":", 1)[1].strip()
            if name in queries:
                raise ValueError(f"query {name} is defined twice")
            queries[name] = ""
        elif name is not None:
            queries[name] += line + "\n"
    return {k: v.strip() for k, v in queries.items()}


@cache
def queries(dialect: str, area: str) -> dict[str, str]:
    """The named queries of store/sql/<dialect>/<area>.sql."""
    path = resources.files("pixelrelay.store") / "sql" / dialect / f"{area}.sql"
    return parse_queries(path.read_text(encoding="utf-8"))
