"""Delivery benchmark: fill the queue through the ingest pipeline (timed separately), then drain
it to the emulator (a separate process) with one delivery worker. Prints a table.

    python -m bench.delivery [--events 100000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

import httpx

from pixelrelay.clock import SystemClock
from pixelrelay.config import DeliverySettings, Secret, Settings
from pixelrelay.delivery.sender import Sender
from pixelrelay.delivery.worker import DeliveryWorker
from pixelrelay.destinations import build_destination
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.store.sqlite import SQLiteStore

TOKEN, PIXEL = "bench-token", "BENCHPIXEL00001"


def event(i: int, now: int) -> dict[str, object]:
    return {"event": "AddToCart", "event_id": f"d{i}", "timestamp": now,
            "user": {"email": f"c{i}@example.com", "external_id": f"cust{i}",
                     "ttclid": "E.C.P.CvQBA", "ip": "203.0.113.42", "user_agent": "Mozilla/5.0"},
            "properties": {"value": 19.9, "currency": "EUR", "content_type": "product",
                           "contents": [{"content_id": f"SKU-{i % 97}", "quantity": 1,
                                         "price": 19.9}]}}


async def run(events: int, batch_size: int, port: int, db: str) -> tuple[float, float, int]:
    settings = Settings(destinations=(tiktok_destination(
        name="tiktok", pixel_code=PIXEL, access_token=Secret(TOKEN),
        api_url=f"http://127.0.0.1:{port}", batch_size=batch_size),),
        delivery=DeliverySettings(flush_interval_s=0, max_qps=100000))
    store = SQLiteStore(db)
    await store.open()
    clock = SystemClock()
    destination = build_destination(settings.destinations[0])
    ingestor = Ingestor(settings, store, [destination], clock)
    now = int(time.time())
    started = time.perf_counter()
    for chunk in range(0, events, 500):
        result = await ingestor.accept([event(i, now) for i in range(chunk,
                                                                     min(events, chunk + 500))])
        assert not result.rejected, result.rejected[:1]
    ingest_s = time.perf_counter() - started

    sender = Sender(settings.delivery)
    worker = DeliveryWorker(store, destination, sender, settings.delivery, clock,
                            token_fingerprint=Secret(TOKEN).fingerprint())
    started = time.perf_counter()
    delivered = 0
    while delivered < events:
        n = await worker.run_once()
        if n == 0 and (await store.queues(["tiktok"]))[0].pending == 0:
            break
        delivered += n
    deliver_s = time.perf_counter() - started
    await sender.close()
    await store.close()
    return ingest_s, deliver_s, delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--port", type=int, default=19000)
    args = parser.parse_args()
    emulator = subprocess.Popen([sys.executable, "-m", "pixelrelay.cli", "emulator",
                                 "--port", str(args.port), "--token", TOKEN, "--pixel", PIXEL])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{args.port}/stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            ingest_s, deliver_s, delivered = asyncio.run(
                run(args.events, args.batch_size, args.port, os.path.join(tmp, "d.db")))
        stats = httpx.get(f"http://127.0.0.1:{args.port}/stats").json()
    finally:
        emulator.terminate()
        emulator.wait()
    print(f"\npixelrelay delivery benchmark ({os.cpu_count()} cores; emulator in its own process)")
    print(f"{'measure':<52}{'events/s':>12}")
    print(f"{'in-process ingest (pipeline + SQLite, 500/commit)':<52}"
          f"{args.events / ingest_s:>12,.0f}")
    print(f"{f'delivery to emulator (batches of {args.batch_size})':<52}"
          f"{delivered / deliver_s:>12,.0f}   (target >= 20,000)")
    print(f"emulator accepted {stats.get('events')} events in {stats.get('requests')} requests")


if __name__ == "__main__":
    main()
