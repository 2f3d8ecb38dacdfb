"""Coalesced: calls made while a run is out go together in the next; each hears its own
answer or the run's error; one caller giving up costs the others nothing."""

from __future__ import annotations

import asyncio

import pytest

from pixelrelay.store.coalesce import Coalesced


async def settle() -> None:
    """Let the tasks made so far (the callers, then the runner) take their steps."""
    for _ in range(3):
        await asyncio.sleep(0)


class Reader:
    def __init__(self) -> None:
        self.runs: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def run(self, items: list[int]) -> list[str]:
        self.runs.append(items)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [f"answer {i}" for i in items]


async def test_calls_during_a_run_go_together_in_the_next_and_each_gets_its_own() -> None:
    reader = Reader()
    read = Coalesced(reader.run)
    first = asyncio.create_task(read(1))
    await settle()
    assert reader.runs == [[1]]  # an idle reader answers the first call at once
    later = [asyncio.create_task(read(i)) for i in (2, 3, 4)]
    await settle()
    reader.release.set()
    assert await first == "answer 1"
    assert await asyncio.gather(*later) == ["answer 2", "answer 3", "answer 4"]
    assert reader.runs == [[1], [2, 3, 4]] and read.runs == 2
    assert await read(5) == "answer 5" and reader.runs[-1] == [5]  # idle again


async def test_a_failed_run_fails_each_of_its_calls_and_the_next_run_still_goes() -> None:
    reader = Reader()
    read = Coalesced(reader.run)
    reader.fail = RuntimeError("database gone")
    calls = [asyncio.create_task(read(i)) for i in (1, 2)]
    await settle()
    reader.release.set()
    for call in calls:
        with pytest.raises(RuntimeError, match="database gone"):
            await call
    reader.fail = None
    assert await read(3) == "answer 3"


async def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    reader = Reader()
    read = Coalesced(reader.run)
    calls = [asyncio.create_task(read(i)) for i in (1, 2, 3)]
    await settle()
    calls[1].cancel()
    reader.release.set()
    assert await calls[0] == "answer 1" and await calls[2] == "answer 3"
    with pytest.raises(asyncio.CancelledError):
        await calls[1]
