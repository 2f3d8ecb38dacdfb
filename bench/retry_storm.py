"""Retry benchmark: requests and drain time under faults, TikTok being the emulator (own process).

    python -m bench.retry_storm [--events 100000] [--outage-events 200000] [--batch-size 1000]

Each scenario fills a fresh SQLite outbox through the ingest pipeline, then one delivery worker
(the real DeliveryWorker, Sender and SQLiteStore) delivers it over loopback HTTP.

1. Random faults: the emulator fails 30 %, 40 % and 50 % of requests (its own HTTP 5xx, 40100
   and 50000 faults at equal rates, seeded); N events are queued before delivery starts. The
   worker's own run loop delivers them on the real clock, with the production backoff scaled
   down 40x (2 s -> 0.05 s, 10 min -> 15 s) so that waits take seconds. Ideal requests =
   N / batch / (1 - p).
2. Outage: the emulator answers every request with 503 for 10 simulated minutes while the
   events arrive evenly; production backoff (2 s doubling up to 10 min), max_qps 500. The
   worker's clock is the real clock plus an offset: during the outage the benchmark moves the
   offset on in steps of --step seconds, adding that step's events and cycling the worker until
   nothing is due (the claims and requests a worker would make, bunched to the step). Then the
   faults are lifted and the worker's own run loop drains the queue on the real clock, offset
   frozen: "time to drain" is wall time from that moment until the queue is empty, the wait for
   the first retry to come due included (no new traffic arrives to wake the worker sooner).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

from pixelrelay.config import DeliverySettings, DestinationSettings, Secret, Settings
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.worker import DeliveryWorker
from pixelrelay.destinations import build_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.store.sqlite import SQLiteStore

TOKEN, PIXEL, NAME = "bench-token", "BENCHPIXEL00001", "tiktok"
OUTAGE_S = 600.0
RANDOM_DELIVERY = DeliverySettings(flush_interval_s=0.0, retry_base_s=0.05, retry_cap_s=15.0,
                                   max_attempts=50, request_timeout_s=10.0)
OUTAGE_DELIVERY = DeliverySettings(flush_interval_s=0.0)  # production backoff and throttle


class OffsetClock:
    """The real clock plus an offset that the outage simulation moves on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def event(i: int, now: float) -> dict[str, object]:
    return {"event": "AddToCart", "event_id": f"s{i}", "timestamp": int(now),
            "user": {"email": f"c{i}@example.com", "external_id": f"cust{i}",
                     "ip": "203.0.113.42", "user_agent": "Mozilla/5.0"},
            "properties": {"value": 19.9, "currency": "EUR", "content_type": "product",
                           "contents": [{"content_id": f"SKU-{i % 97}", "quantity": 1,
                                         "price": 19.9}]}}


@dataclass
class Rig:
    store: SQLiteStore
    ingestor: Ingestor
    worker: DeliveryWorker
    sender: Sender
    clock: OffsetClock

    async def add(self, first: int, count: int) -> None:
        for start in range(first, first + count, 500):
            end = min(first + count, start + 500)
            result = await self.ingestor.accept([event(i, self.clock.now())
                                                 for i in range(start, end)])
            assert result.accepted == end - start, result.rejected[:1]

    async def empty(self) -> bool:
        stats = (await self.store.queues([NAME]))[0]
        return stats.pending == 0 and stats.in_flight == 0

    async def close(self) -> None:
        await self.sender.close()
        await self.store.close()


async def rig(db: str, url: str, batch_size: int, delivery: DeliverySettings) -> Rig:
    settings = Settings(destinations=(DestinationSettings(
        name=NAME, pixel_code=PIXEL, access_token=Secret(TOKEN), api_url=url,
        batch_size=batch_size),), delivery=delivery)
    store = SQLiteStore(db)
    await store.open()
    clock = OffsetClock()
    destination = build_destination(settings.destinations[0])
    sender = Sender(delivery)
    worker = DeliveryWorker(store, destination, sender, delivery, clock,
                            token_fingerprint=Secret(TOKEN).fingerprint())
    return Rig(store, Ingestor(settings, store, [destination], clock), worker, sender, clock)


async def run_until_empty(r: Rig, timeout_s: float) -> float | None:
    """The worker's own loop until the queue is empty; seconds taken, None past the timeout."""
    stop = asyncio.Event()
    task = asyncio.create_task(r.worker.run(stop))
    started = time.perf_counter()
    try:
        while not await r.empty():
            if time.perf_counter() - started > timeout_s:
                return None
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


class Emulator:
    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self, **faults: float) -> None:
        httpx.post(f"{self.url}/reset").raise_for_status()
        httpx.post(f"{self.url}/faults", json=faults).raise_for_status()

    def stats(self) -> dict[str, object]:
        stats: dict[str, object] = httpx.get(f"{self.url}/stats").json()
        return stats


async def random_faults(emu: Emulator, n: int, batch_size: int, p: float, db: str,
                        timeout_s: float) -> list[str]:
    r = await rig(db, emu.url, batch_size, RANDOM_DELIVERY)
    rate = 1.0 - (1.0 - p) ** (1.0 / 3.0)
    emu.reset()
    await r.add(0, n)
    emu.reset(http_5xx_rate=rate, code_40100_rate=rate, code_50000_rate=rate)
    took = await run_until_empty(r, timeout_s)
    await r.close()
    stats = emu.stats()
    requests = int(str(stats["requests"]))
    codes = stats["by_code"]
    assert isinstance(codes, dict)
    failed = (requests - int(codes.get("0", 0))) / max(requests, 1)
    ideal, seen = n / batch_size / (1.0 - p), n / batch_size / (1.0 - failed)
    return [f"{p:.0%}", f"{failed:.1%}", f"{n:,}", f"{requests:,}", f"{ideal:,.1f}",
            f"{requests / ideal:.2f}", f"{requests / seen:.2f}",
            "not drained" if took is None else f"{n / took:,.0f}", _once(stats, n)]


async def outage(emu: Emulator, n: int, batch_size: int, step_s: float, db: str,
                 timeout_s: float) -> list[tuple[str, str]]:
    r = await rig(db, emu.url, batch_size, OUTAGE_DELIVERY)
    emu.reset(http_5xx_rate=1.0)
    steps = max(1, round(OUTAGE_S / step_s))
    for step in range(steps):
        first = step * n // steps
        await r.add(first, (step + 1) * n // steps - first)
        while await r.worker.run_once():
            pass
        r.clock.offset += step_s
    failed = int(str(emu.stats()["requests"]))
    pending = (await r.store.queues([NAME]))[0].pending
    next_due = await r.store.next_due(NAME)
    first_due = max(0.0, (next_due or r.clock.now()) - r.clock.now())

    emu.reset()  # TikTok is back
    took = await run_until_empty(r, timeout_s)
    await r.close()
    stats = emu.stats()
    requests = int(str(stats["requests"]))
    limit = 1.1 * n / batch_size
    return [
        ("events queued when TikTok comes back", f"{pending:,}"),
        ("failed requests during the outage", f"{failed:,}"),
        ("first retry due after recovery", f"{first_due:.1f} s"),
        ("requests to drain", f"{requests:,} (limit 1.1 x {n / batch_size:,.0f} = {limit:,.0f})"),
        ("time to drain", "not drained" if took is None else f"{took:.1f} s"),
        ("drain events/s", "-" if took is None else f"{n / took:,.0f}"),
        ("each event once", _once(stats, n)),
    ]


def _once(stats: dict[str, object], n: int) -> str:
    return "yes" if stats["events"] == n and stats["duplicates"] == 0 else (
        f"no: {stats['events']} recorded, {stats['duplicates']} duplicates")


async def run(args: argparse.Namespace, emu: Emulator, tmp: str) -> None:
    print(f"\npixelrelay retry benchmark ({os.cpu_count()} cores; emulator in its own process; "
          f"batches of {args.batch_size:,})")
    header = ["faults", "failed", "events", "requests", "ideal", "ratio", "ratio@failed",
              "events/s", "once"]
    widths = [7, 8, 9, 10, 8, 7, 14, 10, 6]
    print("\nrandom faults: the emulator's seeded dice at rate p; failed = the share of requests "
          "that did;\nideal = N / batch / (1 - p); ratio@failed = requests / (N / batch / "
          "(1 - failed)), 1.00 when\nevery successful request was full; backoff scaled down 40x")
    print("".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for i, p in enumerate((0.0, 0.3, 0.4, 0.5)):  # 0: the same run without faults, for scale
        row = await random_faults(emu, args.events, args.batch_size, p,
                                  os.path.join(tmp, f"r{i}.db"), args.timeout)
        print("".join(c.rjust(w) for c, w in zip(row, widths, strict=True)), flush=True)
    print(f"\noutage: HTTP 503 for {OUTAGE_S / 60:.0f} simulated minutes (steps of "
          f"{args.step:g} s) while {args.outage_events:,} events arrive; production backoff")
    for label, value in await outage(emu, args.outage_events, args.batch_size, args.step,
                                     os.path.join(tmp, "o.db"), args.timeout):
        print(f"  {label:<40}{value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--outage-events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--step", type=float, default=10.0,
                        help="seconds of simulated outage per step")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="give up a drain after this many seconds")
    parser.add_argument("--port", type=int, default=19100)
    args = parser.parse_args()
    # Every failed attempt logs a warning; tens of thousands of them would bury the table.
    logging.getLogger("pixelrelay.delivery").setLevel(logging.ERROR)
    emulator = subprocess.Popen([sys.executable, "-m", "pixelrelay.cli", "emulator",
                                 "--port", str(args.port), "--token", TOKEN, "--pixel", PIXEL])
    emu = Emulator(f"http://127.0.0.1:{args.port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                emu.stats()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args, emu, tmp))
    finally:
        emulator.terminate()
        emulator.wait()


if __name__ == "__main__":
    main()
