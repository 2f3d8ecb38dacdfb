"""How a group writer (either engine's) splits the calls queued for one transaction into runs.
No SQL and no I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Queued(Protocol):
    @property
    def bulk(self) -> object | None: ...


C = TypeVar("C", bound=Queued)


def runs(group: Sequence[C]) -> list[list[C]]:
    """The calls of a group in runs: all calls of one bulk job together, where the first of
    them was queued (one run, one statement per table), every other call alone.

    Moving a call ahead of others is safe: the calls of one group were all waiting at once
    (each caller waits for its call), so any order is one they could have been queued in.
    """
    out: dict[int, list[C]] = {}
    for call in group:
        out.setdefault(id(call.bulk) if call.bulk is not None else id(call), []).append(call)
    return list(out.values())
