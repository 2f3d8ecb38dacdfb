"""Diagnostics benchmark: how long `GET /v1/diagnostics` and the dashboard take with many events
in their window, on SQLite and (with --postgres URL) PostgreSQL. Prints a table.

    python -m bench.diagnostics [--events 1000000] [--window 24h] [--postgres postgresql://...]

The events (realistic match keys, three names, server and browser copies) are spread evenly
over the window and written straight through the store; half of them are then claimed and
delivered, so every part of the report (coverage, dedup, latency, trend) has rows to read;
PostgreSQL is then vacuumed, as autovacuum would soon after such a load.
A `serve --no-delivery` process answers; each figure is the median of --repeat loads: first
with nothing stored (every window query scans the whole window, as before the roll-ups),
then after the roll-up a delivery process runs every 30 s has stored the settled minutes
(its time is printed too: once for the whole backlog, then only new and dirty minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from bench.pg import scratch_schema
from bench.split_processes import free_port, wait_up
from pixelrelay.diagnostics.report import WINDOWS
from pixelrelay.model import Channel, DeliveryState, Event, Route, User, click_ids_of
from pixelrelay.store import open_store
from pixelrelay.store.base import Finished, NewEvent
from pixelrelay.store.rollup import ROLL_UP_BATCH

ADMIN = "bench-admin-token"
NAMES = ("CompletePayment", "AddToCart", "ViewContent")


def new_event(i: int, at: float) -> NewEvent:
    name = NAMES[i % 3]
    user = User(email=("a" * 64,) if i % 2 else (), phone=("b" * 64,) if i % 3 else (),
                ip="203.0.113.9", user_agent="Mozilla/5.0",
                click_ids=click_ids_of({"ttclid": "E.C.P.x" if i % 4 else "",
                                        "ttp": "2.ttp" if i % 5 else ""}))
    event = Event(name=name, event_id=f"e{i // 2}" if i % 10 < 2 else f"e{i}",
                  event_time=int(at), user=user, received_at=at,
                  channel=Channel.BROWSER if i % 10 == 1 else Channel.SERVER)
    return NewEvent(event, (Route("tiktok", name, DeliveryState.PENDING, b"{}"),))


async def fill(url: str, total: int, span_s: float) -> float:
    store = open_store(url, recover_in_flight=False)
    await store.open()
    started, now = time.perf_counter(), time.time()
    first = now - span_s + 60
    try:
        for base in range(0, total, 1000):
            at = first + (span_s - 120) * base / total
            await store.insert([new_event(i, at) for i in range(base, min(total, base + 1000))],
                               at)
        delivered = 0
        while delivered < total // 2:
            claimed = await store.claim("tiktok", 1000, now, 600)
            if not claimed:
                break
            await store.finish([Finished(c.delivery_id, c.lease_token, DeliveryState.DELIVERED,
                                         http_status=200, code=0) for c in claimed], None, now)
            delivered += len(claimed)
    finally:
        await store.close()
    return time.perf_counter() - started


def config(tmp: Path, url: str, port: int) -> str:
    path = tmp / "diag.toml"
    path.write_text(f"""
[server]
port = {port}
admin_token = "{ADMIN}"
[storage]
url = "{url}"
[[sources]]
name = "backend"
key = "bench-source-key"
[[destinations]]
name = "tiktok"
pixel_code = "BENCHPIXEL00001"
access_token = "bench-token"
api_url = "http://127.0.0.1:9"
""")
    return str(path)


async def roll_up(url: str) -> float:
    """Seconds to store every settled minute, as the delivery processes do in the background."""
    store = open_store(url, recover_in_flight=False)
    await store.open()
    started = time.perf_counter()
    try:
        while await store.roll_up(time.time()) == ROLL_UP_BATCH:
            pass
    finally:
        await store.close()
    return time.perf_counter() - started


Figures = tuple[float, float, float, float, float, float]


def vacuum(url: str) -> None:
    """What autovacuum does within minutes of a bulk load (the visibility map lets the queue
    counts read the index alone), so both loads see the state a running gateway is in."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def measure(url: str, events: int, window: str, repeat: int) -> Figures:
    """Fill seconds; median seconds of the JSON and of the page scanning the window; roll-up
    seconds; the JSON and the page from the stored minutes."""
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        cfg = config(Path(d), url, port)
        subprocess.run([sys.executable, "-m", "pixelrelay.cli", "migrate", "--config", cfg],
                       check=True, capture_output=True)
        filled = asyncio.run(fill(url, events, WINDOWS[window]))
        if url.startswith("postgresql"):
            vacuum(url)
        proc = subprocess.Popen([sys.executable, "-m", "pixelrelay.cli", "serve",
                                 "--no-delivery", "--config", cfg],
                                stdout=(Path(d) / "serve.log").open("ab"),
                                stderr=subprocess.STDOUT)
        try:
            api = f"http://127.0.0.1:{port}"
            wait_up(f"{api}/healthz")
            head = {"X-Admin-Token": ADMIN}

            def timed(path: str) -> float:
                runs = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    r = httpx.get(f"{api}{path}", headers=head, timeout=600)
                    r.raise_for_status()
                    runs.append(time.perf_counter() - started)
                return statistics.median(runs)

            api_path, page_path = f"/v1/diagnostics?window={window}", f"/?window={window}"
            scan_api, scan_page = timed(api_path), timed(page_path)
            rolled = asyncio.run(roll_up(url))
            return filled, scan_api, scan_page, rolled, timed(api_path), timed(page_path)
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--window", default="24h", choices=list(WINDOWS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL for a scratch schema")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as d:
        results["SQLite"] = measure(f"sqlite:///{Path(d) / 'diag.db'}", args.events,
                                    args.window, args.repeat)
    if args.postgres:
        with scratch_schema(args.postgres) as url:
            results["PostgreSQL"] = measure(url, args.events, args.window, args.repeat)
    print(f"\npixelrelay diagnostics, {args.events:,} events in the {args.window} window "
          f"({os.cpu_count()} cores; median of {args.repeat}; target 0.300 s)")
    print(f"{'':<22}{'scan':>22}{'':>12}{'stored minutes':>24}")
    print(f"{'engine':<12}{'fill (s)':>10}{'JSON (s)':>11}{'page (s)':>11}{'roll-up (s)':>12}"
          f"{'JSON (s)':>11}{'page (s)':>11}{'target':>8}")
    for name, (filled, scan_api, scan_page, rolled, api, page) in results.items():
        print(f"{name:<12}{filled:>10.0f}{scan_api:>11.3f}{scan_page:>11.3f}{rolled:>12.1f}"
              f"{api:>11.3f}{page:>11.3f}{0.3:>8.3f}")


if __name__ == "__main__":
    main()
