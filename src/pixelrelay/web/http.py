"""Bounded body reading, JSON and problem answers, the bearer token, https behind a proxy."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from pixelrelay.pipeline import nesting
from pixelrelay.pipeline.readers import may_hold_nul
from pixelrelay.web.addresses import peer_is_trusted

MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    pass


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")


def problem_response(status: int, error: str, reason: str,
                     headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return json_response({"error": error, "reason": reason, **extra}, status, headers)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read at most `limit` bytes; refuse early on Content-Length, and while streaming otherwise.

    The messages are read here rather than through `request.stream()`: its async generator
    cost about 15k instructions a request, a tenth of the HTTP layer of a single event. So
    Starlette does not know the body was read: nothing may read it from `request` after this.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large(limit: int) -> Response:
    """413, closing the connection: keeping it open would mean reading the rest to discard."""
    size = "1 MiB" if limit == MAX_BODY_BYTES else f"{limit // 1024} KiB"
    return problem_response(413, "too_large", f"request body is larger than {size}",
                            headers={"Connection": "close"})


async def read_json(request: Request, limit: int = MAX_BODY_BYTES
                    ) -> tuple[Any, bool, Response | None]:
    """The decoded JSON body and whether its text is free of U+0000 (see
    readers.may_hold_nul), or the 413/400 answer that refuses it."""
    try:
        body = await read_body(request, limit)
    except BodyTooLarge:
        return None, False, too_large(limit)
    try:
        return nesting.loads(body), not may_hold_nul(body), None
    except orjson.JSONDecodeError as exc:
        return None, False, problem_response(400, "malformed_json",
                                             f"body is not valid JSON: {exc}")
    except nesting.TooDeep as exc:
        return None, False, too_deep(exc)


def too_deep(exc: nesting.TooDeep) -> Response:
    """400 naming the first value nested too deep: the whole request is refused, as for
    malformed JSON (see pipeline.nesting)."""
    return problem_response(400, "too_deep", str(exc), field=exc.field)


def came_over_https(request: Request, trusted_proxies: tuple[str, ...]) -> bool:
    """https here, or at a trusted proxy that says so in X-Forwarded-Proto.

    Any hop saying https counts: wrongly marking a cookie Secure only fails safe.
    """
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    if not peer_is_trusted(peer, trusted_proxies):
        return False
    proto = request.headers.get("x-forwarded-proto", "")
    return any(p.strip().lower() == "https" for p in proto.split(","))


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
