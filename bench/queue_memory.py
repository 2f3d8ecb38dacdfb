"""Memory while 1,000,000 events wait in the queue: RSS as the queue fills, then while claiming.

    python -m bench.queue_memory [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time

import orjson

from pixelrelay.model import DeliveryState, Event, Route, User
from pixelrelay.store.base import Finished, NewEvent
from pixelrelay.store.sqlite import SQLiteStore


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def new_event(i: int, now: int) -> NewEvent:
    event = Event(name="AddToCart", event_id=f"m{i}", event_time=now,
                  user=User(email=("a" * 64,), ttclid="E.C.P.x"), received_at=now)
    payload = orjson.dumps({"event": "AddToCart", "event_time": now, "event_id": f"m{i}",
                            "user": {"email": ["a" * 64], "ttclid": "E.C.P.x"}})
    return NewEvent(event, (Route("tiktok", "AddToCart", DeliveryState.PENDING, payload),))


async def run(total: int, db: str) -> None:
    store = SQLiteStore(db)
    await store.open()
    now = int(time.time())
    print(f"{'queued events':>14}{'RSS MiB':>10}{'insert e/s':>12}")
    print(f"{0:>14,}{rss_mib():>10.1f}")
    step = total // 4
    for quarter in range(4):
        started = time.perf_counter()
        for base in range(quarter * step, (quarter + 1) * step, 1000):
            await store.insert([new_event(i, now) for i in range(base, base + 1000)], now)
        rate = step / (time.perf_counter() - started)
        print(f"{(quarter + 1) * step:>14,}{rss_mib():>10.1f}{rate:>12,.0f}")
    for cycle in range(5):
        claimed = await store.claim("tiktok", 1000, now + 1, 60)
        await store.finish([Finished(c.delivery_id, c.lease_token, DeliveryState.DELIVERED)
                            for c in claimed], None, now + 1)
        stats = (await store.queues(["tiktok"]))[0]
        print(f"claim+finish #{cycle + 1}: pending {stats.pending:,}, RSS {rss_mib():.1f} MiB")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.events, os.path.join(tmp, "q.db")))


if __name__ == "__main__":
    main()
