"""The edge middleware: the request histogram's status label (what was sent, 500 for an error,
none for no answer), and the client address a failed credential is counted against."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelrelay import metrics
from pixelrelay.sources.credentials import credential_kind
from pixelrelay.web.credential_guard import SCOPE_KEY, Attempt, FailedCredentials
from pixelrelay.web.edge import Edge


def count(status: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "pixelrelay_http_request_duration_seconds_count",
        {"method": "POST", "path": "/v1/events", "status": status})
    return value or 0.0


def edge(app: ASGIApp, trusted_proxies: tuple[str, ...] = ()) -> Edge:
    return Edge(app, body_timeout_s=5.0, trusted_proxies=trusted_proxies,
                limiter=FailedCredentials(kind_of=credential_kind))


async def call(app: Edge, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    await app({"type": "http", "method": "POST", "path": "/v1/events", "headers": headers or [],
               "client": ("10.0.0.2", 40000)}, receive, send)


async def test_the_status_label_follows_the_response() -> None:
    async def answers(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 429, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async def leaves(scope: Scope, receive: Receive, send: Send) -> None:
        return  # e.g. the client disconnected before an answer

    before = {s: count(s) for s in ("429", "500", "none")}
    await call(edge(answers))
    with pytest.raises(RuntimeError):
        await call(edge(fails))
    await call(edge(leaves))
    assert {s: count(s) - before[s] for s in before} == {"429": 1, "500": 1, "none": 1}


async def test_a_failure_counts_against_the_visitor_behind_a_trusted_proxy() -> None:
    seen: list[Attempt] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope[SCOPE_KEY])

    # A repeated X-Forwarded-For is one list: the proxy's own entry (the last) is what counts.
    await call(edge(endpoint, trusted_proxies=("10.0.0.0/8",)),
               [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"203.0.113.9")])
    await call(edge(endpoint), [(b"x-forwarded-for", b"203.0.113.9")])
    assert [a.address for a in seen] == ["203.0.113.9", "10.0.0.2"]
    assert {a.kind for a in seen} == {"source key"}


async def test_the_body_deadline_holds_across_chunks_and_leaves_other_cancels_alone() -> None:
    chunks = [{"type": "http.request", "body": b"{", "more_body": True}]
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(3600)  # the client sends nothing more
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async def reads_slowly(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await asyncio.sleep(0.15)  # past the deadline while not waiting for the body
        await receive()

    scope = {"type": "http", "method": "POST", "path": "/login", "headers": []}
    slow = Edge(reads_slowly, body_timeout_s=0.1, trusted_proxies=(), limiter=FailedCredentials())
    await slow(dict(scope), receive, send)
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [408]

    async def waits(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    sent.clear()
    waiting = asyncio.create_task(
        Edge(waits, body_timeout_s=5.0, trusted_proxies=(), limiter=FailedCredentials())(
            dict(scope), receive, send))
    await asyncio.sleep(0.05)
    waiting.cancel()  # e.g. the server shutting down: not the client's timeout
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert sent == []
