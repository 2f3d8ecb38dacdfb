"""Concurrent calls of one read, made as one: the reads asked for while one is out to the
database go together in the next, as the writer's group commit does for writes.

An idle store answers the first call at once; under load, 32 requests that each look a
session up cost one round trip instead of 32 (each a pooled connection, a statement and its
client-side protocol work, which on PostgreSQL cost more than the rest of a drop-in request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Call(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class Coalesced(Generic[T, R]):
    """`await coalesced(item)` is `run([item, ...])`'s answer for `item`, where `run` takes
    every item asked for while the previous run was out and answers each in order. A failed
    run fails each of its calls with its exception; a caller that gives up leaves the others
    their answers. Calls are answered on the event loop that made them (one per store)."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._run = run
        self._queued: list[_Call[T, R]] = []
        self._runner: asyncio.Task[None] | None = None
        self.runs = 0  # how many runs answered the calls (observable in tests)

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append(_Call(item, future))
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        calls: list[_Call[T, R]] = []
        try:
            while self._queued:
                calls, self._queued = self._queued, []
                self.runs += 1
                try:
                    answers = await self._run([c.item for c in calls])
                except Exception as exc:  # each caller hears it, as from a read of its own
                    for call in calls:
                        if not call.future.done():
                            call.future.set_exception(exc)
                else:
                    for call, answer in zip(calls, answers, strict=True):
                        if not call.future.done():
                            call.future.set_result(answer)
        finally:
            self._runner = None
            # Only when this task was cancelled (its loop is closing): nobody is left to run.
            for call in (*calls, *self._queued):
                if not call.future.done():
                    call.future.cancel()
            self._queued = []
