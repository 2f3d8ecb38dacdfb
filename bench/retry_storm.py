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
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from pixelrelay.config import DeliverySettings, Secret, Settings
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.worker import DeliveryWorker
from pixelrelay.destinations import build_destination
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.store.sqlite import SQLiteStore

TOKEN, PIXEL, NAME = "bench-token", "BENCHPIXEL00001", "tiktok"
OUTAGE_S = 600.0
RANDOM_DELIVERY = DeliverySettings(flush_interval_s=0.0, retry_base_s=0.05, retry_cap_s=15.0,
                                   max_attempts=50, request_timeout_s=10.0)
OUTAGE_DELIVERY = DeliverySettings(flush_interval_s=0.0)  # production backoff and throttle
REFUSED_DELIVERY = OUTAGE_DELIVERY
REFUSED_NAME = "Contact"  # the one event the emulator refuses (40002 naming data.<i>.event)
# Shares of all requests: the emulator rolls 5xx first, then 40100, then 50000.
REFUSED_FAULTS = {"http_5xx_rate": 0.10, "code_40100_rate": 0.15 / 0.90,
                  "code_50000_rate": 0.25 / 0.75, "reject_event": REFUSED_NAME}


class OffsetClock:
    """The real clock plus an offset that the outage simulation moves on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def event(i: int, now: float, name: str = "AddToCart") -> dict[str, object]:
    return {"event": name, "event_id": f"s{i}", "timestamp": int(now),
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

    async def add(self, first: int, count: int, refused: int | None = None) -> None:
        """Events first..first+count; `refused`, if given, is the one TikTok will refuse."""
        for start in range(first, first + count, 500):
            end = min(first + count, start + 500)
            result = await self.ingestor.accept([
                event(i, self.clock.now(), REFUSED_NAME if i == refused else "AddToCart")
                for i in range(start, end)])
            assert result.accepted == end - start, result.rejected[:1]

    async def empty(self) -> bool:
        stats = (await self.store.queues([NAME]))[0]
        return stats.pending == 0 and stats.in_flight == 0

    async def close(self) -> None:
        await self.sender.close()
        await self.store.close()


async def rig(db: str, url: str, batch_size: int, delivery: DeliverySettings,
              seed: int | None = None) -> Rig:
    settings = Settings(destinations=(tiktok_destination(
        name=NAME, pixel_code=PIXEL, access_token=Secret(TOKEN), api_url=url,
        batch_size=batch_size),), delivery=delivery)
    store = SQLiteStore(db)
    await store.open()
    clock = OffsetClock()
    destination = build_destination(settings.destinations[0])
    sender = Sender(delivery)
    worker = DeliveryWorker(store, destination, sender, delivery, clock,
                            token_fingerprint=Secret(TOKEN).fingerprint(),
                            rng=None if seed is None else random.Random(seed))
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

    def reset(self, **faults: object) -> None:
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


async def refused_one(emu: Emulator, good: int, batch_size: int, seed: int, db: str,
                      timeout_s: float) -> list[str]:
    """300 good events and one refused, TikTok failing half the requests; see the docstring."""
    r = await rig(db, emu.url, batch_size, REFUSED_DELIVERY, seed=seed)
    emu.reset()
    await r.add(0, good + 1, refused=good // 2)
    emu.reset(**REFUSED_FAULTS)
    stop = asyncio.Event()
    task = asyncio.create_task(r.worker.run(stop))
    started = time.perf_counter()
    all_good = bad_dead = None
    async with httpx.AsyncClient() as client:
        while time.perf_counter() - started < timeout_s and bad_dead is None:
            events = (await client.get(f"{emu.url}/stats")).json()["events"]
            if all_good is None and events >= good:
                all_good = time.perf_counter() - started
            if all_good is not None and await r.empty():
                bad_dead = time.perf_counter() - started
            await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 60)
    arrived = int(str(emu.stats()["events"]))
    (view,) = await r.store.deliveries(f"s{good // 2}")
    await r.close()
    stats = emu.stats()
    codes = stats["by_code"]
    assert isinstance(codes, dict)
    requests = int(str(stats["requests"]))
    refused, ok = int(codes.get("40002", 0)), int(codes.get("0", 0))
    failed = requests - refused - ok
    return [str(seed), f"{failed / max(requests, 1):.0%}", f"{requests}", f"{ok}",
            f"{failed}", f"{refused}", f"{arrived}/{good}",
            f">{timeout_s:g}" if all_good is None else f"{all_good:.1f} s",
            f">{timeout_s:g}" if bad_dead is None else f"{bad_dead:.1f} s",
            str(view.state)]


def _once(stats: dict[str, object], n: int) -> str:
    return "yes" if stats["events"] == n and stats["duplicates"] == 0 else (
        f"no: {stats['events']} recorded, {stats['duplicates']} duplicates")


async def run(args: argparse.Namespace, emu: Emulator, tmp: str) -> None:
    if "random" in args.scenarios:
        await random_rows(args, emu, tmp)
    if "outage" in args.scenarios:
        await outage_rows(args, emu, tmp)
    if "refused" in args.scenarios:
        await refused_rows(args, tmp)


async def random_rows(args: argparse.Namespace, emu: Emulator, tmp: str) -> None:
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


async def outage_rows(args: argparse.Namespace, emu: Emulator, tmp: str) -> None:
    print(f"\noutage: HTTP 503 for {OUTAGE_S / 60:.0f} simulated minutes (steps of "
          f"{args.step:g} s) while {args.outage_events:,} events arrive; production backoff")
    for label, value in await outage(emu, args.outage_events, args.batch_size, args.step,
                                     os.path.join(tmp, "o.db"), args.timeout):
        print(f"  {label:<40}{value}")


async def refused_rows(args: argparse.Namespace, tmp: str) -> None:
    print(f"\none refused event: {args.good} good events + 1 that TikTok refuses (40002), "
          "TikTok failing half the\nrequests (10 % HTTP 503, 15 % 40100, 25 % 50000); "
          "production backoff; one run per emulator seed;\nfailed/ok/refused = requests; "
          "bad = the refused event's final state")
    header = ["seed", "fail %", "requests", "ok", "failed", "refused", "arrived",
              "all good", "bad dead", "bad"]
    widths = [5, 8, 10, 5, 8, 9, 9, 10, 10, 9]
    print("".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for seed in range(1, args.seeds + 1):
        with emulator(args.port + seed, seed) as emu:
            row = await refused_one(emu, args.good, args.batch_size, seed,
                                    os.path.join(tmp, f"b{seed}.db"), args.refused_timeout)
        print("".join(c.rjust(w) for c, w in zip(row, widths, strict=True)), flush=True)


# `pixelrelay emulator` with its fault dice seeded (the command always seeds them with 0).
_EMULATOR = """
import sys, uvicorn
from pixelrelay.emulator import Emulator, create_emulator_app
emulator = Emulator(access_tokens=[sys.argv[3]], pixel_codes=[sys.argv[4]],
                    seed=int(sys.argv[2]))
uvicorn.run(create_emulator_app(emulator), host="127.0.0.1", port=int(sys.argv[1]),
            access_log=False, log_level="warning")
"""


@contextmanager
def emulator(port: int, seed: int = 0) -> Iterator[Emulator]:
    """The emulator in its own process, its fault dice seeded with `seed`."""
    process = subprocess.Popen([sys.executable, "-c", _EMULATOR, str(port), str(seed), TOKEN,
                                PIXEL])
    emu = Emulator(f"http://127.0.0.1:{port}")
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
        yield emu
    finally:
        process.terminate()
        process.wait()


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
    parser.add_argument("--good", type=int, default=300,
                        help="good events beside the refused one")
    parser.add_argument("--seeds", type=int, default=5,
                        help="runs of the refused-event scenario (emulator seeds 1..n)")
    parser.add_argument("--refused-timeout", type=float, default=150.0,
                        help="give up a refused-event run after this many seconds")
    parser.add_argument("--scenarios", default="random,outage,refused",
                        help="comma-separated: random, outage, refused")
    parser.add_argument("--port", type=int, default=19100)
    args = parser.parse_args()
    args.scenarios = set(args.scenarios.split(","))
    # Every failed attempt logs a warning; tens of thousands of them would bury the table.
    logging.getLogger("pixelrelay.delivery").setLevel(logging.ERROR)
    with emulator(args.port) as emu, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, emu, tmp))


if __name__ == "__main__":
    main()
