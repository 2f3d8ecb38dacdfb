"""The ASGI middleware in front of every route: each request's duration and status in the
histogram, its body within a deadline (else 408), and the failed-credential budget of its
address (else 429).

One layer, not three: every layer wraps each receive and send of every request, and three of
them cost more than the rest of an empty request did (bench.server --without ingest: 10.6k
req/s with three layers, 17.3k with none).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelrelay import metrics
from pixelrelay.web.credential_guard import SCOPE_KEY, Attempt, FailedCredentials
from pixelrelay.web.http import problem_response

log = logging.getLogger(__name__)


class BodyTimeout(Exception):
    """The client did not send its whole body before the deadline."""


class Edge:
    """Wraps `receive` and `send` once for every HTTP request.

    The body deadline counts from the request's start (its headers), not per chunk, so a
    client trickling a byte at a time cannot hold a connection and a handler for longer than
    `body_timeout_s`. Once the body is complete, or the answer has started, `receive` is
    passed through untouched (it then only ever reports a disconnect). A client that leaves
    mid-body ends its request with one debug line instead of a traceback.
    """

    def __init__(self, app: ASGIApp, *, body_timeout_s: float, trusted_proxies: tuple[str, ...],
                 limiter: FailedCredentials) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.trusted = trusted_proxies
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()  # a duration, not a timestamp: no Clock needed
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        body_done = False
        status = 0  # no answer started yet
        # One timer per request, armed at the first wait for the body and cancelled once it is
        # whole (asyncio.timeout_at per chunk cost a fifth of an empty request).
        timer: asyncio.TimerHandle | None = None
        task: asyncio.Task[Any] | None = None
        waiting = expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            if waiting and task is not None:
                task.cancel()

        async def guarded_receive() -> Message:
            nonlocal body_done, timer, task, waiting
            if body_done or status:
                return await receive()
            if timer is None:
                task = asyncio.current_task()
                timer = asyncio.get_running_loop().call_at(deadline, expire)
            if expired:
                raise BodyTimeout
            waiting = True
            try:
                message = await receive()
            except asyncio.CancelledError:
                # Ours only if nobody else cancelled the request as well.
                if expired and task is not None and task.uncancel() == 0:
                    raise BodyTimeout from None
                raise
            finally:
                waiting = False
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
                timer.cancel()
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await (self._admit(scope) or self.app)(scope, guarded_receive, tracked_send)
        except ClientDisconnect:
            # Nobody is left to answer; the request had stored nothing (bodies are read whole
            # before anything is accepted).
            log.debug("client left %s %s before sending its whole body",
                      scope["method"], scope["path"])
        except BodyTimeout:
            log.debug("%s %s: body not complete within %g s; answered 408",
                      scope["method"], scope["path"], self.body_timeout_s)
            if not status:
                response = problem_response(
                    408, "request_timeout",
                    f"the request body did not arrive within {self.body_timeout_s:g} s",
                    headers={"Connection": "close"})
                await response(scope, receive, tracked_send)
        except BaseException:
            if not status:
                status = 500  # what the error middleware outside this one answers
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._observe(scope["method"], scope["path"], status,
                          time.perf_counter() - started)

    def _admit(self, scope: Scope) -> ASGIApp | None:
        """The 429 for an address out of failed-credential budget, else None (and the
        attempt noted in the scope, for the endpoint to report a wrong credential)."""
        kind = self.limiter.kind_of(scope["method"], scope["path"])
        if kind is None:
            return None
        client = scope.get("client")
        attempt = Attempt(self.limiter, kind, client[0] if client else None,
                          _header(scope, b"x-forwarded-for"), self.trusted)
        # While no address is failing, nobody is out of budget: the address is not needed.
        wait = 0.0 if self.limiter.clear else self.limiter.retry_after(kind, attempt.address)
        if wait > 0:
            return self.limiter.refuse(kind, scope["path"], wait)
        scope[SCOPE_KEY] = attempt
        return None

    def _observe(self, method: str, path: str, status: int, seconds: float) -> None:
        # The children are few: methods and paths are labelled (h11 would take any method
        # token), statuses are ours.
        metrics.child(metrics.REQUEST_LATENCY, metrics.method_label(method),
                      metrics.path_label(path),
                      str(status) if status else "none").observe(seconds)


def _header(scope: Scope, name: bytes) -> str | None:
    """Header `name` (lower case), repeated ones joined with commas as HTTP defines them
    (X-Forwarded-For is read right to left, so the last proxy's entries stay last)."""
    found: bytes | None = None
    for key, value in scope["headers"]:
        if key == name:
            found = value if found is None else found + b"," + value
    return found.decode("latin-1") if found is not None else None
