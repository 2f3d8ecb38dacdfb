"""A storage URL -> the engine and where its data lives, or the reason it cannot be one.

`open_store` (what serve runs) and the config reader both parse with this, so `check`
refuses exactly the URLs serve would refuse, with a reason that says how to write them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pixelrelay.errors import ConfigError

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_FORMS = "sqlite:///pixelrelay.db or postgresql://user@host:5432/database"


@dataclass(frozen=True, slots=True)
class Target:
    engine: Literal["sqlite", "postgres"]
    location: str  # the SQLite file (or :memory:), or the libpq URL as given


def parse(url: str) -> Target:
    """The storage URL's engine and location; ConfigError at storage.url otherwise."""
    if url.startswith(SQLITE):
        path = url[len(SQLITE):]
        if not path:
            raise ConfigError("storage.url",
                              "sqlite:/// needs a file path, e.g. sqlite:///pixelrelay.db")
        return Target("sqlite", path)
    if url.startswith(POSTGRES):
        return Target("postgres", url)
    raise ConfigError("storage.url", _reason(url))


def _reason(url: str) -> str:
    m = _SCHEME.match(url)
    scheme = m.group(1) if m else ""
    rest = url[len(scheme) + 1:]
    if not url.strip():
        return f"is empty (expected {_FORMS})"
    if scheme.lower() in ("sqlite", "sqlite3", "postgresql", "postgres") and (
            scheme != scheme.lower()):
        return f"write the scheme in lower case: {scheme.lower()}:"  # the rest may hold a password
    if scheme in ("sqlite", "sqlite3"):
        # sqlite://pixelrelay.db reads as host "pixelrelay.db" and no path: the file is
        # what follows the third slash (a fourth makes it absolute).
        return ("a SQLite URL has three slashes before the file's path (four for an absolute "
                f"one): sqlite:///{rest.lstrip('/') or 'pixelrelay.db'}")
    if scheme.startswith(("postgresql+", "postgres+")):
        return "a libpq URL has no driver suffix: postgresql://user@host:5432/database"
    if m is None or len(scheme) == 1:  # no scheme, or a Windows drive letter
        return (f"a bare path is not a storage URL: write sqlite:///{url} for a SQLite file "
                "(or postgresql://user@host:5432/database)")
    return f"{scheme} is not supported: pixelrelay stores in SQLite or PostgreSQL ({_FORMS})"
