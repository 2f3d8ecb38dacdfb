"""Scale-out benchmark: the split processes on PostgreSQL with 1, 2 and 4 of each, and the
memory of `serve --no-delivery` and `deliver` while 1,000,000 events wait, on both engines.
Every part is its own process (the emulator too). Prints tables.

    python -m bench.scale_out --postgres postgresql://127.0.0.1:5432/test
        [--seconds 8] [--backlog 100000] [--queued 1000000] [--processes 1,2,4]

1. Ingest: N `serve --no-delivery` on one PostgreSQL, 500-event requests from 8 keep-alive
   connections spread over them, for --seconds: events/s accepted (committed before the 202).
2. Delivery: --backlog events queued, then N `deliver` started against one emulator
   (1,000 per request): events/s from TikTok's first answer until it holds the last event.
3. Memory: RSS of `serve --no-delivery` and `deliver` with an empty queue, then with --queued
   events waiting (TikTok holding every request unanswered, so the queue stays full while
   `deliver` keeps its requests in flight), the API taking traffic and answering /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from bench.ingest import batch_body
from bench.loadgen import LoadResult, request_bytes, run_load
from bench.pg import scratch_schema
from bench.queue_memory import new_event
from bench.split_processes import KEY, PIXEL, TOKEN, free_port, wait_up
from bench.split_processes import config as split_config
from pixelrelay.store import open_store

BATCH = 500
CONNECTIONS = 8


class Procs:
    """Child processes of one measurement, stopped together."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, health: str | None = None) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{args[0]}-{len(self.running)}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "pixelrelay.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "PIXELRELAY_LOG_LEVEL": "WARNING"})
        self.running.append(proc)
        if health:
            wait_up(health)
        return proc

    def stop(self) -> None:
        for p in self.running:
            p.terminate()
        for p in self.running:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.running.clear()


@contextlib.contextmanager
def emulator(procs: Procs) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs.spawn("emulator", "--port", str(port), "--token", TOKEN, "--pixel", PIXEL,
                health=f"{url}/stats")
    yield url


def emulator_events(url: str) -> int:
    return int(httpx.get(f"{url}/stats", timeout=30).json()["events"])


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def migrate(cfg: str) -> None:
    subprocess.run([sys.executable, "-m", "pixelrelay.cli", "migrate", "--config", cfg],
                   check=True, capture_output=True)


async def fill(url: str, total: int) -> float:
    """Queue `total` pending events straight through the store; events/s."""
    store = open_store(url, recover_in_flight=False)
    await store.open()
    now = int(time.time())
    started = time.perf_counter()
    try:
        for base in range(0, total, 1000):
            await store.insert([new_event(i, now) for i in range(base, min(total, base + 1000))],
                               now)
    finally:
        await store.close()
    return total / (time.perf_counter() - started)


@contextlib.contextmanager
def postgres_rig(base: str) -> Iterator[tuple[Procs, str, str, str]]:
    """A scratch schema, migrated, and an emulator: (processes, emulator, url, config)."""
    with tempfile.TemporaryDirectory() as d, scratch_schema(base) as url:
        procs = Procs(Path(d))
        try:
            with emulator(procs) as emu:
                cfg = config(Path(d), url, emu)
                migrate(cfg)
                yield procs, emu, url, cfg
        finally:
            procs.stop()


def config(tmp: Path, url: str, emulator: str) -> str:
    return split_config(tmp, free_port(), emulator, url)


def ingest(base: str, n: int, seconds: float) -> float:
    with postgres_rig(base) as (procs, _emu, _url, cfg):
        ports = [free_port() for _ in range(n)]
        for port in ports:
            procs.spawn("serve", "--no-delivery", "--config", cfg, "--port", str(port),
                        health=f"http://127.0.0.1:{port}/healthz")
        head = {"Authorization": f"Bearer {KEY}"}

        def make(i: int) -> bytes:
            return request_bytes("/v1/events", batch_body(i, BATCH), head)

        async def load() -> list[LoadResult]:
            per = max(1, CONNECTIONS // n)
            # Distinct request numbers per process: no event_id is a duplicate.
            return await asyncio.gather(*(
                run_load(port, numbered(k), seconds=seconds, concurrency=per)
                for k, port in enumerate(ports)))

        def numbered(k: int) -> Callable[[int], bytes]:
            return lambda i: make(i * n + k)

        results = asyncio.run(load())
        return sum(r.requests for r in results) * BATCH / max(r.seconds for r in results)


def deliver(base: str, n: int, backlog: int) -> float:
    with postgres_rig(base) as (procs, emu, url, cfg):
        asyncio.run(fill(url, backlog))
        for _ in range(n):
            procs.spawn("deliver", "--config", cfg)
        # From the first request TikTok answers: process start-up is not delivery.
        while (first := emulator_events(emu)) == 0:
            time.sleep(0.01)
        started = time.perf_counter()
        while emulator_events(emu) < backlog:
            time.sleep(0.05)
        return (backlog - first) / (time.perf_counter() - started)


def memory(url: str, queued: int, tmp: Path) -> tuple[float, float, float, float, float]:
    """RSS of the API and the delivery process, empty and with `queued` waiting (MiB), and
    the fill rate."""
    procs = Procs(tmp)
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    head = {"Authorization": f"Bearer {KEY}"}

    def start(cfg: str) -> tuple[int, int]:
        a = procs.spawn("serve", "--no-delivery", "--config", cfg, "--port", str(api_port),
                        health=f"{api}/healthz")
        port = free_port()
        b = procs.spawn("deliver", "--config", cfg, "--port", str(port),
                        health=f"http://127.0.0.1:{port}/healthz")
        return a.pid, b.pid

    def exercise() -> None:
        """Traffic on the API (1,000 events, /metrics) and 20 s for delivery to settle."""
        for i in range(2):
            r = httpx.post(f"{api}/v1/events", content=batch_body(i, BATCH), timeout=60,
                           headers={**head, "Content-Type": "application/json"})
            r.raise_for_status()
        httpx.get(f"{api}/metrics", timeout=60).raise_for_status()
        time.sleep(20)

    try:
        with emulator(procs) as emu:
            cfg = config(tmp, url, emu)
            migrate(cfg)
            api_pid, deliver_pid = start(cfg)
            exercise()
            empty = rss_mib(api_pid), rss_mib(deliver_pid)
            # The emulator is killed with the rest below; stop ours first so the fill is alone.
            for p in procs.running[1:]:
                p.terminate()
                p.wait()
            del procs.running[1:]
            rate = asyncio.run(fill(url, queued))
            httpx.post(f"{emu}/faults", json={"hang": True})
            api_pid, deliver_pid = start(cfg)
            exercise()
            full = rss_mib(api_pid), rss_mib(deliver_pid)
            httpx.post(f"{emu}/faults", json={"hang": False})
            return (*empty, *full, rate)
    finally:
        procs.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", required=True, help="a PostgreSQL URL for scratch schemas")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args()
    counts = [int(x) for x in args.processes.split(",")]
    print(f"pixelrelay scale-out on PostgreSQL ({os.cpu_count()} cores; the load generator, "
          "emulator and database share them)")
    print(f"{'processes':>10}{'ingest ev/s (500/request)':>28}"
          f"{f'delivery ev/s ({args.backlog:,} queued)':>32}")
    for n in counts:
        print(f"{n:>10}{ingest(args.postgres, n, args.seconds):>28,.0f}"
              f"{deliver(args.postgres, n, args.backlog):>32,.0f}", flush=True)
    print(f"\nRSS (MiB) with the queue empty and with {args.queued:,} events waiting")
    print(f"{'engine':<12}{'serve --no-delivery':>22}{'deliver':>18}{'fill ev/s':>12}")
    with tempfile.TemporaryDirectory() as d:
        sqlite = memory(f"sqlite:///{Path(d) / 'mem.db'}", args.queued, Path(d))
    with tempfile.TemporaryDirectory() as d, scratch_schema(args.postgres) as url:
        postgres = memory(url, args.queued, Path(d))
    for name, (ae, de, af, df, rate) in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        print(f"{name:<12}{f'{ae:.0f} -> {af:.0f}':>22}{f'{de:.0f} -> {df:.0f}':>18}"
              f"{rate:>12,.0f}")


if __name__ == "__main__":
    main()
