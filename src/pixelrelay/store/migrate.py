"""Numbered schema migrations per dialect (store/migrations/<dialect>/NNN_name.sql): the
number is the schema version a database reaches once that file has run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """Every migration of `dialect`, in version order; numbers must run 1, 2, 3... unbroken."""
    folder = resources.files("pixelrelay.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), entry.name,
                                   entry.read_text(encoding="utf-8")))
    found.sort(key=lambda x: x.version)
    if [x.version for x in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..{len(found)}: "
                           f"{[x.name for x in found]}")
    return found


def pending(dialect: str, version: int) -> list[Migration]:
    """What a database at schema `version` still has to run."""
    return [m for m in migrations(dialect) if m.version > version]


def latest(dialect: str) -> int:
    return len(migrations(dialect))
