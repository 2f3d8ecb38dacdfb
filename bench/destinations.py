"""What each configured destination costs at ingest, in process (no HTTP, no load generator,
so the figure is steady on a busy machine): events through Ingestor.accept into a real SQLite
store with TikTok alone, then TikTok and Meta (which keeps the plaintext view and hashes its
own way), alternating rounds, every customer with a phone of their own. Prints a table.

    python -m bench.destinations [--events 3000] [--batch 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.ingest import SINGLE
from pixelrelay.clock import SystemClock
from pixelrelay.config import Secret, Settings, StorageSettings
from pixelrelay.destinations import DestinationSettings, build_destination
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.store.sqlite.store import SQLiteStore


def destinations(with_meta: bool) -> tuple[DestinationSettings, ...]:
    tiktok = tiktok_destination(name="tiktok", pixel_code="C9ABC1234567890",
                                access_token=Secret("bench"))
    if not with_meta:
        return (tiktok,)
    return (tiktok, meta_destination(name="meta", access_token=Secret("bench"),
                                     pixel_id="123456789012345"))


async def us_per_event(with_meta: bool, events: int, batch: int, folder: Path) -> float:
    db = folder / f"{'meta' if with_meta else 'tiktok'}-{time.monotonic_ns()}.db"
    settings = Settings(storage=StorageSettings(url=f"sqlite:///{db}"),
                        destinations=destinations(with_meta))
    store = SQLiteStore(str(db))
    await store.open()
    ingestor = Ingestor(settings, store, [build_destination(d) for d in settings.destinations],
                        SystemClock())
    now = int(time.time())
    raw = [{**SINGLE, "event_id": f"e{i}", "timestamp": now,
            "user": {**SINGLE["user"], "phone": f"+4917012{i:05d}"}}  # type: ignore[dict-item]
           for i in range(events)]
    started = time.perf_counter()
    for i in range(0, events, batch):
        await ingestor.accept(raw[i:i + batch])
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed / events * 1e6


async def main_async(args: argparse.Namespace) -> None:
    runs: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for with_meta in (False, True):  # alternating: drift hits both alike
                runs[with_meta].append(await us_per_event(with_meta, args.events, args.batch,
                                                          Path(tmp)))
    one, two = statistics.median(runs[False]), statistics.median(runs[True])
    print(f"\ningest cost per event, in process, SQLite, {args.events} events in batches of "
          f"{args.batch}, median of {args.rounds} rounds")
    print(f"{'destinations':<24}{'us/event':>12}{'events/s':>12}")
    print(f"{'TikTok':<24}{one:>12.0f}{1e6 / one:>12,.0f}")
    print(f"{'TikTok + Meta':<24}{two:>12.0f}{1e6 / two:>12,.0f}")
    print(f"{'the second destination':<24}{two - one:>+12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
