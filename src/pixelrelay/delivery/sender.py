"""The only module that sends HTTP: one pooled httpx client; errors become values, never raise."""

from __future__ import annotations

import asyncio
import time

import httpx

from pixelrelay.config import DeliverySettings
from pixelrelay.destinations.base import HttpRequest, HttpResponse

# Requests on the wire at once per destination: a bisection's halves go out together, and a
# backlog keeps PARALLEL_REQUESTS batches in flight.
MAX_CONNECTIONS = 64


class Sender:
    """POSTs prepared requests over a keep-alive HTTP/1.1 pool: one Sender per destination,
    so a destination that answers slowly holds only its own connections.

    Pass `transport` (httpx.MockTransport, httpx.ASGITransport) to send in-process in tests.
    Nothing here logs headers: they carry the Access-Token.

    At most `max_connections` requests are on the wire at once; the others wait for a slot
    before their clock starts, so a burst (a bisection's halves) never times out in the pool.
    request_timeout_s bounds every phase (connect, each read) and also the whole request: an
    answer that trickles in, or a peer that never answers, is cut off either way and comes
    back as a retryable error.
    """

    def __init__(self, settings: DeliverySettings,
                 transport: httpx.AsyncBaseTransport | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._deadline_s = settings.request_timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.request_timeout_s),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            http2=False,
            follow_redirects=False,  # a redirect must not carry the token somewhere else
        )

    async def send(self, req: HttpRequest) -> HttpResponse:
        async with self._slots:
            return await self._send(req)

    async def _send(self, req: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self._deadline_s):
                resp = await self._client.post(req.url, content=req.body, headers=req.headers)
                body = await resp.aread()
        except httpx.TimeoutException as exc:
            return HttpResponse(status=None, error=f"timeout: {type(exc).__name__}",
                                latency_ms=_since(start))
        except TimeoutError:
            return HttpResponse(status=None,
                                error=f"timeout: no full answer within {self._deadline_s:g} s",
                                latency_ms=_since(start))
        except Exception as exc:  # a send must never raise into the worker
            # httpx's exception text names the URL at most; headers are never part of it.
            return HttpResponse(status=None, error=f"{type(exc).__name__}: {exc}",
                                latency_ms=_since(start))
        return HttpResponse(status=resp.status_code, body=body, latency_ms=_since(start))

    async def close(self) -> None:
        await self._client.aclose()


def _since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
