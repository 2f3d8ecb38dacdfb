"""The store's share of ingest, in process: the insert calls that bench.ingest's requests make
(built by the real Ingestor from the same bodies), replayed straight into the store: single
events by 32 concurrent callers, batches of 500 by 4, on SQLite and PostgreSQL side by side.
Rounds alternate the engines so drift hits both alike; medians are printed, with the CPU
microseconds per event of this process and (PostgreSQL, when the server runs on this machine)
of the writer's backend, and the events per committed group.

    python -m bench.store_insert [--seconds 3] [--rounds 3] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from bench.ingest import batch_body, single_body
from bench.pg import scratch_schema
from bench.server import KEY, PIXEL
from pixelrelay.app import Gateway
from pixelrelay.clock import SystemClock
from pixelrelay.config import Secret, Settings, SourceSettings, StorageSettings
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.store import open_store
from pixelrelay.store.base import IngestLogFor, InsertOutcome, NewEvent, Store

Call = tuple[list[NewEvent], float, IngestLogFor | None]


class _Capture:
    """Stands in for the store while the Ingestor builds the insert calls."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def insert(self, batch: Sequence[NewEvent], now: float,
                     ingest_log: IngestLogFor | None = None) -> list[InsertOutcome]:
        self.calls.append((list(batch), now, ingest_log))
        return [InsertOutcome.ACCEPTED] * len(batch)

    async def find_sessions(self, lookups: Sequence[Any], since: float) -> list[None]:
        return [None] * len(lookups)

    async def link_identities(self, links: Any, now: float) -> None:
        return None


def build_calls(bodies: list[bytes]) -> list[Call]:
    settings = Settings(
        storage=StorageSettings(url="sqlite:///unused.db"),
        sources=(SourceSettings(name="bench", kind="server", key=Secret(KEY)),),
        destinations=(tiktok_destination(name="tiktok", pixel_code=PIXEL,
                                         access_token=Secret("bench-token"),
                                         api_url="http://127.0.0.1:9"),))
    capture = _Capture()
    gateway = Gateway(settings, capture, SystemClock(), None,  # type: ignore[arg-type]
                      delivers=False)

    async def run() -> None:
        for body in bodies:
            doc = orjson.loads(body)
            await gateway.ingestor.accept(doc.get("events", [doc]))

    asyncio.run(run())
    return capture.calls


@dataclass
class Round:
    events: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # this process
    backend_cpu: float | None = None  # the writer's PostgreSQL backend
    groups: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _backend_cpu(pid: int | None) -> float | None:
    """CPU seconds of a local PostgreSQL backend (None when it is not on this machine)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


async def _writer_pid(store: Store) -> int | None:
    db = getattr(store, "_db_open", None)
    if db is None or not hasattr(db, "_writer_connection"):
        return None
    conn = await db._writer_connection()
    return int(conn.info.backend_pid)


async def replay(store: Store, calls: list[Call], seconds: float, concurrency: int,
                 restamp: Callable[[Call, int], Call]) -> Round:
    """Run `calls` (each once, renamed per round by `restamp`) by `concurrency` callers for
    `seconds`; events per second over the calls that finished."""
    pid = await _writer_pid(store)
    before_commits = getattr(store, "commits", 0) or 0
    done = Round()
    it = iter(range(len(calls)))
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        for i in it:
            if time.perf_counter() >= deadline:
                return
            batch, now, log = restamp(calls[i], i)
            out = await store.insert(batch, now, log)
            done.events += len(out)

    cpu0, b0, t0 = time.process_time(), _backend_cpu(pid), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    done.seconds = time.perf_counter() - t0
    done.cpu = time.process_time() - cpu0
    b1 = _backend_cpu(pid)
    done.backend_cpu = None if b0 is None or b1 is None else b1 - b0
    done.groups = (getattr(store, "commits", 0) or 0) - before_commits
    return done


def _restamper(tag: str) -> Callable[[Call, int], Call]:
    """A round's own event ids, so every round inserts new events (no duplicates)."""
    def restamp(call: Call, i: int) -> Call:
        batch, _now, log = call
        now = time.time()
        return ([replace(n, event=replace(n.event, event_id=f"{tag}{i}.{j}"))
                 for j, n in enumerate(batch)], now, log)

    return restamp


async def one_round(url: str, calls: list[Call], seconds: float, concurrency: int,
                    tag: str) -> Round:
    store = open_store(url)
    await store.open()
    try:
        return await replay(store, calls, seconds, concurrency, _restamper(tag))
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--only", choices=("single", "batch"))
    args = parser.parse_args()
    singles = build_calls([single_body(n, "s") for n in range(40_000)])
    batches = build_calls([batch_body(n, args.batch, True) for n in range(60)])
    loads = {"single": (singles, 32), "batch": (batches, 4)}
    if args.only:
        loads = {args.only: loads[args.only]}
    results: dict[tuple[str, str], list[Round]] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            (scratch_schema(args.postgres) if args.postgres else _nothing()) as pg:
        engines = {"SQLite": f"sqlite:///{os.path.join(tmp, 'bench.db')}"}
        if pg:
            engines["PostgreSQL"] = pg
        for rnd in range(args.rounds):
            for load, (calls, concurrency) in loads.items():
                for engine, url in engines.items():
                    r = asyncio.run(one_round(url, calls, args.seconds, concurrency,
                                              f"{load[0]}{rnd}{engine[0]}-"))
                    results.setdefault((load, engine), []).append(r)
    print(f"\nstore.insert in process ({os.cpu_count()} cores), median of {args.rounds} rounds")
    print(f"{'load':<10}{'engine':<12}{'events/s':>10}{'cpu us/ev':>11}"
          f"{'pg us/ev':>10}{'ev/group':>10}")
    for (load, engine), rounds in results.items():
        rate = statistics.median(r.rate for r in rounds)
        cpu = statistics.median(1e6 * r.cpu / r.events for r in rounds)
        pg_cpu = [1e6 * r.backend_cpu / r.events for r in rounds if r.backend_cpu is not None]
        groups = [r.events / r.groups for r in rounds if r.groups]
        print(f"{load:<10}{engine:<12}{rate:>10,.0f}{cpu:>11.0f}"
              f"{statistics.median(pg_cpu) if pg_cpu else float('nan'):>10.0f}"
              f"{statistics.median(groups) if groups else float('nan'):>10.1f}")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
