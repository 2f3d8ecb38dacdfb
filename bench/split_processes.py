"""Split-process benchmark: `serve` alone vs `serve --no-delivery` + `deliver` on one SQLite file,
every part its own process (the emulator too). Prints a table.

    python -m bench.split_processes [--singles 40] [--events 20000]

1. Wake-up: single events posted one at a time at random intervals (0.2-0.6 s); the time from
   the 202 to the emulator holding the event. `serve` wakes its worker in-process; `deliver`
   learns of another process's rows from the store (SQLite: by polling every IDLE_POLL_S).
2. Throughput: --events posted in requests of 500 by 4 clients, then the time until the last
   one is delivered (batches of 1,000): the API and delivery apart share SQLite's one writer
   lock across processes instead of one writer thread.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

from pixelrelay.delivery.worker import IDLE_POLL_S

TOKEN, PIXEL, KEY = "bench-token", "BENCHPIXEL00001", "bench-source-key"


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pixelrelay.cli", *args],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PIXELRELAY_LOG_LEVEL": "WARNING"})


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def config(tmp: Path, port: int, emulator: str, url: str | None = None) -> str:
    """A config for every process of a run: one destination at the emulator, 1,000 per
    request, no rate limit; SQLite in `tmp` unless `url` names another database."""
    path = tmp / "bench.toml"
    path.write_text(f"""
[server]
port = {port}
[storage]
url = "{url or f'sqlite:///{tmp / "bench.db"}'}"
[[sources]]
name = "backend"
key = "{KEY}"
[[destinations]]
name = "tiktok"
pixel_code = "{PIXEL}"
access_token = "{TOKEN}"
api_url = "{emulator}"
batch_size = 1000
[delivery]
max_qps = 0
""")
    return str(path)


def delivered(emulator: str, event_id: str) -> bool:
    return bool(httpx.get(f"{emulator}/events", params={"event_id": event_id}).json())


def post(api: str, events: list[dict[str, object]]) -> None:
    r = httpx.post(f"{api}/v1/events", content=orjson.dumps({"events": events}), timeout=30,
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 202 and r.json()["accepted"] == len(events), r.text


def wake_ups(api: str, emulator: str, n: int, tag: str) -> list[float]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        time.sleep(rng.uniform(0.2, 0.6))  # no phase lock with the delivery poll
        event_id = f"{tag}-single-{i}"
        post(api, [{"event": "ViewContent", "event_id": event_id}])
        accepted = time.perf_counter()
        while not delivered(emulator, event_id):
            time.sleep(0.005)
        out.append(time.perf_counter() - accepted)
    return out


def throughput(api: str, emulator: str, n: int, tag: str) -> float:
    now = int(time.time())
    chunks = [[{"event": "AddToCart", "event_id": f"{tag}-{i}", "timestamp": now,
                "user": {"email": f"c{i}@example.com"}} for i in range(s, min(n, s + 500))]
              for s in range(0, n, 500)]
    before = httpx.get(f"{emulator}/stats").json()["events"]
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: post(api, c), chunks))
    while httpx.get(f"{emulator}/stats").json()["events"] < before + n:
        time.sleep(0.02)
    return n / (time.perf_counter() - started)


def run(mode: str, emulator: str, singles: int, events: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = free_port()
        cfg = config(tmp, port, emulator)
        procs = []
        try:
            if mode == "serve":
                procs.append(spawn(["serve", "--config", cfg], tmp / "serve.log"))
            else:
                subprocess.run([sys.executable, "-m", "pixelrelay.cli", "migrate", "--config",
                                cfg], check=True, capture_output=True)
                procs.append(spawn(["deliver", "--config", cfg], tmp / "deliver.log"))
                procs.append(spawn(["serve", "--no-delivery", "--config", cfg], tmp / "api.log"))
            api = f"http://127.0.0.1:{port}"
            wait_up(f"{api}/healthz")
            time.sleep(1.0)  # let deliver finish starting too
            return wake_ups(api, emulator, singles, mode), throughput(api, emulator, events, mode)
        finally:
            for p in procs:
                p.terminate()
                p.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=40)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        emu = spawn(["emulator", "--port", str(port), "--token", TOKEN, "--pixel", PIXEL],
                    Path(d) / "emulator.log")
        emulator = f"http://127.0.0.1:{port}"
        try:
            wait_up(f"{emulator}/stats")
            results = {mode: run(mode, emulator, args.singles, args.events)
                       for mode in ("serve", "split")}
        finally:
            emu.terminate()
            emu.wait()
    print(f"\npixelrelay split processes on SQLite ({os.cpu_count()} cores; "
          f"IDLE_POLL_S = {IDLE_POLL_S:g} s; every part its own process)")
    print(f"{'':<44}{'serve':>14}{'--no-delivery + deliver':>26}")
    rows: list[tuple[str, Callable[[list[float]], float]]] = [
            ("accepted -> delivered, one event: p50 (s)", statistics.median),
            ("                                  p95 (s)",
             lambda w: statistics.quantiles(w, n=20)[-1]),
            ("                                  max (s)", max)]
    for label, f in rows:
        print(f"{label:<44}{f(results['serve'][0]):>14.3f}{f(results['split'][0]):>26.3f}")
    print(f"{f'{args.events:,} events, 500/request, 4 clients (ev/s)':<44}"
          f"{results['serve'][1]:>14,.0f}{results['split'][1]:>26,.0f}")


if __name__ == "__main__":
    main()
