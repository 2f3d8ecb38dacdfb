"""Memory while the queue fills, TikTok being down: RSS filled through the store directly and
through the HTTP API as users fill it (`pixelrelay serve`, its own process), side by side;
then, on the store-filled queue, while claiming.

    python -m bench.queue_memory [--levels 40000,200000,400000] [--probe FILE [--tracemalloc]]

The HTTP row: a real `pixelrelay serve` (SQLite, delivery on, TikTok's api_url a closed port on
loopback, so every event stays queued) takes requests of 500 events from 4 keep-alive clients,
every event a customer of its own (email, phone, external_id, order_id, ip). --probe FILE
writes, at each level, where the server's RSS is (anonymous or file-backed, glibc's heap in use
or free, SQLite's allocations) and, after the last, what malloc_trim gives back; with
--tracemalloc also the Python allocations that grew most since the previous level (by line and
by traceback), to find what holds memory per accepted event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.loadgen import request_bytes, run_count
from bench.split_processes import KEY, config, wait_up
from pixelrelay.model import DeliveryState, Event, Route, User
from pixelrelay.store.base import Finished, NewEvent
from pixelrelay.store.sqlite import SQLiteStore

BATCH, CLIENTS = 500, 4


def rss_mib(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def new_event(i: int, now: int) -> NewEvent:
    event = Event(name="AddToCart", event_id=f"m{i}", event_time=now,
                  user=User(email=("a" * 64,), click_ids=(("ttclid", "E.C.P.x"),)), received_at=now)
    payload = orjson.dumps({"event": "AddToCart", "event_time": now, "event_id": f"m{i}",
                            "user": {"email": ["a" * 64], "ttclid": "E.C.P.x"}})
    return NewEvent(event, (Route("tiktok", "AddToCart", DeliveryState.PENDING, payload),))


async def fill_store(levels: list[int], db: str) -> list[float]:
    """RSS at each level, the queue filled by store.insert in thousands; then claim+finish."""
    store = SQLiteStore(db)
    await store.open()
    now = int(time.time())
    rss, done = [rss_mib()], 0
    for level in levels:
        for base in range(done, level, 1000):
            await store.insert([new_event(i, now) for i in range(base, min(level, base + 1000))],
                               now)
        done = level
        rss.append(rss_mib())
    for cycle in range(5):
        claimed = await store.claim("tiktok", 1000, now + 1, 60)
        await store.finish([Finished(c.delivery_id, c.lease_token, DeliveryState.DELIVERED)
                            for c in claimed], None, now + 1)
        stats = (await store.queues(["tiktok"]))[0]
        print(f"store-filled, claim+finish #{cycle + 1}: pending {stats.pending:,}, "
              f"RSS {rss_mib():.1f} MiB")
    await store.close()
    return rss


def customer_batch(n: int, now: int) -> bytes:
    """Request n: BATCH purchases, each by a customer of its own, as real traffic has them."""
    def one(i: int) -> dict[str, object]:
        k = n * BATCH + i
        return {"event": "Purchase", "event_id": f"q{k}", "timestamp": now, "source": "web",
                "user": {"email": f"customer{k}@example.com",
                         "phone": f"+49 170 {1000000 + k % 9000000}",
                         "external_id": f"cust_{k}", "ttclid": f"E.C.P.{k:x}",
                         "ip": f"203.0.{k // 256 % 256}.{k % 256}",
                         "user_agent": "Mozilla/5.0 (bench)", "locale": "de-DE"},
                "page": {"url": "https://shop.example/thanks",
                         "referrer": "https://shop.example/cart"},
                "properties": {"value": 19.95 + k % 100, "currency": "EUR",
                               "order_id": f"O-{k}", "content_type": "product",
                               "contents": [{"content_id": f"SKU-{k % 997}", "quantity": 1,
                                             "price": 19.95}]},
                "consent": {"marketing": "granted", "ad_user_data": "granted",
                            "ad_personalization": "granted"}}

    return orjson.dumps({"events": [one(i) for i in range(BATCH)]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill_http(levels: list[int], tmp: Path, probe: str | None,
              trace: bool) -> tuple[list[float], float]:
    """RSS of a `pixelrelay serve` at each level, filled by CLIENTS posting BATCH events."""
    port, down = free_port(), free_port()  # nothing listens on `down`: TikTok is unreachable
    cfg = config(tmp, port, f"http://127.0.0.1:{down}")
    log = tmp / "serve.log"
    serve = ([sys.executable, "-m", "bench.queue_memory", "--serve-probed", cfg, "--probe",
              probe, *(["--tracemalloc"] if trace else [])]
             if probe else [sys.executable, "-m", "pixelrelay.cli", "serve", "--config", cfg])
    proc = subprocess.Popen(serve, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PIXELRELAY_LOG_LEVEL": "WARNING"})
    auth = {"Authorization": f"Bearer {KEY}"}
    now = int(time.time())
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz")
        rss, sent, errors = [rss_mib(proc.pid)], 0, 0
        if probe:
            os.kill(proc.pid, signal.SIGUSR1)  # the baseline
        started = time.perf_counter()
        for level in levels:
            requests = (level - sent * BATCH) // BATCH
            def make(n: int, first: int = sent) -> bytes:
                return request_bytes("/v1/events", customer_batch(first + n - 1, now), auth)

            result = asyncio.run(run_count(port, make, requests=requests, concurrency=CLIENTS))
            sent += requests
            errors += result.errors
            time.sleep(1.0)  # the writer's last group and the worker's cycle settle
            rss.append(rss_mib(proc.pid))
            if probe:
                os.kill(proc.pid, signal.SIGUSR1)
        rate = sent * BATCH / (time.perf_counter() - started)
        if errors:
            print(f"HTTP fill: {errors} requests not answered 202 (see {log})")
        if probe:
            time.sleep(2.0 + (levels[-1] / 20_000 if trace else 0))  # the last one is written
            os.kill(proc.pid, signal.SIGUSR2)
            time.sleep(1.0)
        return rss, rate
    finally:
        proc.terminate()
        proc.wait()


def memory_breakdown() -> str:
    """Where this process's RSS is: anonymous vs file-backed, glibc's heap (in use, free but
    kept), SQLite's own allocations."""
    import ctypes

    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0]) / 1024

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    m = libc.mallinfo2()
    sqlite = ctypes.CDLL("libsqlite3.so.0")
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    return (f"RSS {rss_mib():.1f} MiB: anon {fields.get('Anonymous', 0):.1f}, file "
            f"{fields.get('Rss', 0) - fields.get('Anonymous', 0):.1f}; malloc: arena "
            f"{m.arena / 2**20:.1f} in use {m.uordblks / 2**20:.1f} free {m.fordblks / 2**20:.1f}"
            f" mmapped {m.hblkhd / 2**20:.1f}; sqlite3_memory_used "
            f"{sqlite.sqlite3_memory_used() / 2**20:.1f} MiB")


def serve_probed(cfg: str, out: str, trace: bool) -> None:
    """`pixelrelay serve --config cfg`; on each SIGUSR1 where its memory is, appended to `out`,
    and with `trace` (tracemalloc) the Python allocations that grew most since the previous
    signal (bench only: the product carries no hook)."""
    import ctypes
    import linecache
    import tracemalloc

    from pixelrelay.cli import main as cli

    if trace:
        tracemalloc.start(12)
    previous: list[tracemalloc.Snapshot] = []
    count = [0]

    def dump(signum: int, frame: object) -> None:
        with open(out, "a") as f:
            f.write(f"\n=== probe {count[0]}: {memory_breakdown()}\n")
            count[0] += 1
            if not trace:
                return
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__),
                 tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
                 tracemalloc.Filter(False, linecache.__file__ or "")])
            current, peak = tracemalloc.get_traced_memory()
            f.write(f"traced {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f})\n")
            if previous:
                for key in ("lineno", "traceback"):
                    f.write(f"--- top growth by {key}\n")
                    for stat in snap.compare_to(previous[-1], key)[:12]:
                        f.write(f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} "
                                f"blocks  {stat.traceback[-1]}\n")
                        if key == "traceback":
                            f.writelines(f"        {line}\n"
                                         for line in stat.traceback.format()[-12:])
            previous[:] = [snap]

    def trim(signum: int, frame: object) -> None:
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        stream = libc.fopen(f"{out}.malloc_info.xml".encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(stream))
        libc.fclose(ctypes.c_void_p(stream))
        started = time.perf_counter()
        libc.malloc_trim(0)
        took = (time.perf_counter() - started) * 1000
        with open(out, "a") as f:
            f.write(f"=== after malloc_trim ({took:.1f} ms): {memory_breakdown()}\n")

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, trim)
    raise SystemExit(cli(["serve", "--config", cfg]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="40000,200000,400000",
                        help="queued events at which RSS is read (comma-separated, rising; "
                             "multiples of 500)")
    parser.add_argument("--probe", metavar="FILE",
                        help="write where the HTTP row's server holds memory at each level")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="with --probe: run that server under tracemalloc, and write the "
                             "Python allocations that grew most")
    parser.add_argument("--serve-probed", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_probed:
        serve_probed(args.serve_probed, args.probe, args.tracemalloc)
        return
    levels = sorted(int(n) for n in args.levels.split(",") if n.strip())
    with tempfile.TemporaryDirectory() as tmp:
        http, rate = fill_http(levels, Path(tmp), args.probe, args.tracemalloc)
        store = asyncio.run(fill_store(levels, os.path.join(tmp, "q.db")))
    print(f"\nRSS (MiB) while the queue fills, TikTok down ({os.cpu_count()} cores; HTTP: "
          f"`pixelrelay serve`, {CLIENTS} clients x {BATCH} events/request, {rate:,.0f} ev/s"
          f"{', under tracemalloc' if args.tracemalloc else ''})")
    print(f"{'queued events':>14}{'store-filled':>14}{'HTTP-filled':>14}")
    for level, s, h in zip([0, *levels], store, http, strict=True):
        print(f"{level:>14,}{s:>14.1f}{h:>14.1f}")


if __name__ == "__main__":
    main()
