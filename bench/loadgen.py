"""A small keep-alive HTTP/1.1 load generator on asyncio streams (the client side of bench/)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def request_bytes(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """One HTTP/1.1 response read off the connection (by Content-Length); its status."""
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _connection(port: int, make_request: Callable[[int], bytes], counter: list[int],
                      more: Callable[[], bool], result: LoadResult, expect: int) -> None:
    """Closed loop: the next request as soon as the answer is in, while `more()` says so."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while more():
            counter[0] += 1
            started = time.perf_counter()
            writer.write(make_request(counter[0]))
            status = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status == expect:
                result.requests += 1
            else:
                result.errors += 1
    finally:
        writer.close()


async def run_load(port: int, make_request: Callable[[int], bytes], *, seconds: float,
                   concurrency: int, expect: int = 202) -> LoadResult:
    result = LoadResult()
    counter = [0]
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_connection(port, make_request, counter,
                                       lambda: time.perf_counter() < deadline, result, expect)
                           for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


async def _paced_connection(port: int, make_request: Callable[[int], bytes], counter: list[int],
                            start: float, interval: float, offset: float, deadline: float,
                            result: LoadResult, expect: int) -> None:
    """Requests on a fixed schedule; latency counts from the scheduled send time, so a slow
    answer that delays the next request is not hidden (no coordinated omission)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        due = start + offset
        while due < deadline:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            counter[0] += 1
            writer.write(make_request(counter[0]))
            status = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - due) * 1000)
            if status == expect:
                result.requests += 1
            else:
                result.errors += 1
            due += interval
    finally:
        writer.close()


async def run_paced(port: int, make_request: Callable[[int], bytes], *, rate: float,
                    seconds: float, concurrency: int, expect: int = 202) -> LoadResult:
    """An open-loop load of `rate` requests/s spread over `concurrency` connections."""
    result = LoadResult()
    counter = [0]
    interval = concurrency / rate
    start = time.perf_counter() + 0.05
    deadline = start + seconds
    await asyncio.gather(*(_paced_connection(port, make_request, counter, start, interval,
                                             i * interval / concurrency, deadline, result,
                                             expect)
                           for i in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


async def run_count(port: int, make_request: Callable[[int], bytes], *, requests: int,
                    concurrency: int, expect: int = 202) -> LoadResult:
    """Exactly `requests` requests (numbered 1..requests) over `concurrency` connections."""
    result = LoadResult()
    counter = [0]
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, make_request, counter,
                                       lambda: counter[0] < requests, result, expect)
                           for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result
