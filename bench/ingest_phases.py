"""Where ingest's time goes, in process: events through Ingestor.accept into a real store, each
phase timed where it runs (decoding the request's JSON, parse_event, the session lookup,
consent and routing with the destinations' payloads); the rest of the wall clock is the
store's insert, its commit and the event loop around them. No HTTP
and no load generator, so the figures hold on a busy machine; bench.ingest measures the HTTP
layer beside them ("HTTP layer alone"). Every customer has an email and a phone of their own.

    python -m bench.ingest_phases [--events 6000] [--batch 1,100] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from bench.destinations import destinations
from bench.ingest import SINGLE
from bench.pg import scratch_schema
from pixelrelay import ingest
from pixelrelay.clock import SystemClock
from pixelrelay.config import Settings, StorageSettings
from pixelrelay.destinations import build_destination
from pixelrelay.serving import collect_garbage_less_often
from pixelrelay.store import open_store

F = TypeVar("F", bound=Callable[..., Any])
PHASES = ("decode JSON", "parse_event", "session lookup", "consent + routes + payloads")
REST = "the rest: store, commit, loop"
SPENT: defaultdict[str, float] = defaultdict(float)


def timed(phase: str, fn: F) -> F:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[phase] += time.perf_counter() - started

    return wrapper  # type: ignore[return-value]


def atimed(phase: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            SPENT[phase] += time.perf_counter() - started

    return wrapper


PHONES = iter(range(1000000, 9999999))  # never the same number twice in a run: the
# normaliser's cache would answer a number another measure used already


def bodies(count: int, tag: str) -> list[bytes]:
    now = int(time.time())
    user: dict[str, Any] = SINGLE["user"]  # type: ignore[assignment]
    return [orjson.dumps({**SINGLE, "event_id": f"{tag}-{i}", "timestamp": now,
                          "user": {**user, "email": f"c{tag}{i}@example.com",
                                   "phone": f"+49 170 {next(PHONES)}"}})
            for i in range(count)]


@contextlib.asynccontextmanager
async def engine(name: str, postgres: str | None, folder: Path) -> AsyncIterator[str]:
    if name == "SQLite":
        yield f"sqlite:///{folder / f'phases-{time.monotonic_ns()}.db'}"
    else:
        assert postgres is not None
        with scratch_schema(postgres) as url:
            yield url


async def measure(url: str, events: int, batch: int) -> tuple[float, dict[str, float]]:
    """(wall µs/event, µs/event per phase) for `events` events sent `batch` at a time; single
    events (batch 1) go 32 at a time, as concurrent requests do (their store time is then
    what the group commit adds to the wall clock, not the sum of 32 overlapping waits)."""
    settings = Settings(storage=StorageSettings(url=url), destinations=destinations(False))
    store = open_store(url)
    await store.open()
    accepting = ingest.Ingestor(settings, store,
                                [build_destination(d) for d in settings.destinations],
                                SystemClock())
    decode = timed("decode JSON", orjson.loads)

    async def send(chunk: list[bytes]) -> None:
        if batch == 1:
            await asyncio.gather(*(accepting.accept([decode(b)]) for b in chunk))
        else:
            await accepting.accept([decode(b) for b in chunk])

    step = 32 if batch == 1 else batch
    warm, timed_bodies = bodies(500, f"w{batch}"), bodies(events, f"m{batch}")
    for i in range(0, len(warm), step):
        await send(warm[i:i + step])
    SPENT.clear()
    started = time.perf_counter()
    for i in range(0, len(timed_bodies), step):
        await send(timed_bodies[i:i + step])
    wall = (time.perf_counter() - started) / events * 1e6
    await store.close()
    phases = {p: SPENT[p] / events * 1e6 for p in PHASES}
    return wall, {**phases, REST: wall - sum(phases.values())}


async def main_async(args: argparse.Namespace) -> None:
    # The phases are the functions accept calls, wrapped where it looks them up.
    setattr(ingest, "parse_event", timed("parse_event", getattr(ingest, "parse_event")))  # noqa: B009, B010
    setattr(ingest.Ingestor, "_with_sessions",  # noqa: B010
            atimed("session lookup", ingest.Ingestor._with_sessions))
    setattr(ingest.Ingestor, "_new_event",  # noqa: B010
            timed("consent + routes + payloads", ingest.Ingestor._new_event))
    collect_garbage_less_often()  # as `pixelrelay serve` does
    engines = ["SQLite"] + (["PostgreSQL"] if args.postgres else [])
    sizes = [int(b) for b in args.batch.split(",")]
    columns: list[tuple[str, float, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in engines:
            for size in sizes:
                async with engine(name, args.postgres, Path(tmp)) as url:
                    wall, phases = await measure(url, args.events, size)
                columns.append((f"{name}, {'single' if size == 1 else f'batch {size}'}",
                                wall, phases))
    print(f"\nwhere ingest's time goes, in process, µs per event ({args.events} events, "
          "each with an email and a phone of its own; TikTok destination)")
    print(f"{'phase':<30}" + "".join(f"{c[0]:>22}" for c in columns))
    for phase in (*PHASES, REST):
        print(f"{phase:<30}" + "".join(f"{c[2][phase]:>22.1f}" for c in columns))
    print(f"{'wall clock':<30}" + "".join(f"{c[1]:>22.1f}" for c in columns))
    print(f"{'events/s':<30}" + "".join(f"{1e6 / c[1]:>22,.0f}" for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--batch", default="1,100", help="events per accept call; 1 = single "
                        "events, 32 at a time")
    parser.add_argument("--postgres", metavar="URL")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
