"""ASGI middleware: a request body arrives within a deadline (else 408), and a client that
leaves mid-body ends its request with one debug line instead of a traceback."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelrelay.sources.http import problem_response

log = logging.getLogger(__name__)


class BodyTimeout(Exception):
    """The client did not send its whole body before the deadline."""


class BodyGuard:
    """Wraps `receive` for every HTTP request.

    The deadline counts from the request's start (its headers), not per chunk, so a client
    trickling a byte at a time cannot hold a connection and a handler for longer than
    `body_timeout_s`. Once the body is complete, or the answer has started, `receive` is
    passed through untouched (it then only ever reports a disconnect).
    """

    def __init__(self, app: ASGIApp, body_timeout_s: float) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        body_done = answered = False

        async def guarded_receive() -> Message:
            nonlocal body_done
            if body_done or answered:
                return await receive()
            # timeout_at arms a timer on this task; wait_for would start a task per chunk.
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout from None
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracked_send)
        except ClientDisconnect:
            # Nobody is left to answer; the request had stored nothing (bodies are read whole
            # before anything is accepted).
            log.debug("client left %s %s before sending its whole body",
                      scope["method"], scope["path"])
        except BodyTimeout:
            log.debug("%s %s: body not complete within %g s; answered 408",
                      scope["method"], scope["path"], self.body_timeout_s)
            if not answered:
                response = problem_response(
                    408, "request_timeout",
                    f"the request body did not arrive within {self.body_timeout_s:g} s",
                    headers={"Connection": "close"})
                await response(scope, receive, send)
