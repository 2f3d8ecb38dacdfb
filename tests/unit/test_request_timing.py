"""The request histogram's status label: what was sent, 500 for an error, none for no answer."""

from __future__ import annotations

import pytest
from starlette.types import Message, Receive, Scope, Send

from pixelrelay import metrics
from pixelrelay.app import RequestTiming


def count(status: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "pixelrelay_http_request_duration_seconds_count",
        {"method": "POST", "path": "/v1/events", "status": status})
    return value or 0.0


async def call(app: RequestTiming) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    await app({"type": "http", "method": "POST", "path": "/v1/events"}, receive, send)


async def test_the_status_label_follows_the_response() -> None:
    async def answers(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 429, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async def leaves(scope: Scope, receive: Receive, send: Send) -> None:
        return  # e.g. the client disconnected before an answer

    before = {s: count(s) for s in ("429", "500", "none")}
    await call(RequestTiming(answers))
    with pytest.raises(RuntimeError):
        await call(RequestTiming(fails))
    await call(RequestTiming(leaves))
    assert {s: count(s) - before[s] for s in before} == {"429": 1, "500": 1, "none": 1}
