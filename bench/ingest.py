"""Ingest benchmark: single-event req/s of POST /v1/events next to a bare JSON-parsing endpoint
on the same server in the same run, then batch ingest events/s. Prints a table.

    python -m bench.ingest [--seconds 5] [--concurrency 32]
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
import orjson

from bench.loadgen import LoadResult, request_bytes, run_load
from bench.server import KEY

SINGLE = {"event": "Purchase", "event_id": "", "source": "web",
          "user": {"email": "Customer@Example.com", "phone": "+49 170 1234567",
                   "external_id": "cust_34982", "ttclid": "E.C.P.CvQBA", "ttp": "2.x9Jb3x",
                   "ip": "203.0.113.42", "user_agent": "Mozilla/5.0 (bench)", "locale": "de-DE"},
          "page": {"url": "https://shop.example/thanks", "referrer": "https://shop.example/cart"},
          "properties": {"value": 129.95, "currency": "EUR", "order_id": "10492",
                         "content_type": "product",
                         "contents": [{"content_id": "SKU-481", "quantity": 1, "price": 129.95}]},
          "consent": {"marketing": "granted", "ad_user_data": "granted",
                      "ad_personalization": "granted"}}


def single_body(n: int, prefix: str) -> bytes:
    return orjson.dumps({**SINGLE, "event_id": f"{prefix}-{n}", "timestamp": int(time.time())})


def batch_body(n: int, size: int) -> bytes:
    now = int(time.time())
    return orjson.dumps({"events": [
        {**SINGLE, "event_id": f"b{n}-{i}", "timestamp": now,
         "user": {**SINGLE["user"], "email": f"c{n}.{i}@example.com"}}  # type: ignore[dict-item]
        for i in range(size)]})


def start_server(db: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.server", "--db", db,
                             "--port", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("bench server did not start")


async def measure(port: int, seconds: float, concurrency: int, batch: int) -> dict[str, LoadResult]:
    auth = {"Authorization": f"Bearer {KEY}"}
    results: dict[str, LoadResult] = {}
    await run_load(port, lambda n: request_bytes("/bare", single_body(n, "w"), {}),
                   seconds=1, concurrency=concurrency)  # warm-up
    await run_load(port, lambda n: request_bytes("/v1/events", single_body(n, "w"), auth),
                   seconds=1, concurrency=concurrency)
    # Alternate the two endpoints so drift (page cache, CPU boost) hits both alike.
    for rnd in range(2):
        for name, path, headers in (("bare", "/bare", {}), ("api", "/v1/events", auth)):
            def make(n: int, p: str = path, h: dict[str, str] = headers,
                     k: int = rnd) -> bytes:
                return request_bytes(p, single_body(n, f"{p}{k}"), h)

            r = await run_load(port, make, seconds=seconds / 2, concurrency=concurrency)
            prev = results.get(name)
            if prev is not None:
                r.requests += prev.requests
                r.errors += prev.errors
                r.seconds += prev.seconds
                r.latencies_ms += prev.latencies_ms
            results[name] = r
    bodies = [batch_body(n, batch) for n in range(400)]
    results["batch"] = await run_load(
        port, lambda n: request_bytes("/v1/events", bodies[n % len(bodies)]
                                      if n < len(bodies) else batch_body(n, batch), auth),
        seconds=seconds, concurrency=4)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(os.path.join(tmp, "bench.db"), args.port)
        try:
            res = asyncio.run(measure(args.port, args.seconds, args.concurrency, args.batch))
        finally:
            proc.terminate()
            proc.wait()
    bare, api, batch = res["bare"], res["api"], res["batch"]
    print(f"\npixelrelay ingest benchmark ({os.cpu_count()} cores, server and client share them)")
    print(f"{'measure':<38}{'rate':>14}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    print(f"{'bare ASGI JSON parse, 1 event/req':<38}{bare.rate:>10,.0f} r/s"
          f"{bare.percentile(50):>9.2f}{bare.percentile(99):>9.2f}{bare.errors:>8}")
    print(f"{'POST /v1/events, 1 event/req':<38}{api.rate:>10,.0f} r/s"
          f"{api.percentile(50):>9.2f}{api.percentile(99):>9.2f}{api.errors:>8}")
    print(f"{'  ratio api / bare (target >= 60%)':<38}{api.rate / bare.rate:>13.0%}")
    print(f"{f'POST /v1/events, {args.batch} events/req':<38}"
          f"{batch.rate * args.batch:>10,.0f} e/s{batch.percentile(50):>9.2f}"
          f"{batch.percentile(99):>9.2f}{batch.errors:>8}")
    print("  (target >= 20,000 events/s per process)")


if __name__ == "__main__":
    main()
