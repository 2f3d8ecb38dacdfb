"""One destination's slowness or failures take nothing another needs: each has its own HTTP
pool, throttle and worker, so the other's requests go out as if it were alone."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.types import Message, Receive, Scope, Send

from pixelrelay.app import create_app
from pixelrelay.delivery.sender import MAX_CONNECTIONS
from pixelrelay.emulator import Emulator, create_emulator_app
from tests.conftest import (
    ACCESS_TOKEN,
    FAST_DELIVERY,
    PIXEL,
    SOURCE_KEY,
    emu_state,
    make_settings,
)
from tests.support import ServerThread, wait_for


class HoldsSingles:
    """A TikTok in front of the emulator that holds every one-event request unanswered until
    released; larger requests reach the emulator at once. With the emulator refusing the event
    (40002), pixelrelay bisects each batch down to single events, which then all wait here."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.held = 0
        self.released = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if body and len(orjson.loads(body).get("data", [])) == 1:
            self.held += 1
            try:
                while not self.released:
                    await asyncio.sleep(0.05)
            finally:
                self.held -= 1
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def post(url: str, prefix: str, n: int) -> set[str]:
    now = int(time.time())
    r = httpx.post(f"{url}/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                   content=orjson.dumps({"events": [
                       {"event": "ViewContent", "event_id": f"{prefix}{i}", "timestamp": now}
                       for i in range(n)]}), timeout=10)
    assert r.status_code == 202 and r.json()["accepted"] == n, r.text
    return set(r.json()["event_ids"])


def test_a_destination_holding_all_its_connections_leaves_another_its_own(
        tmp_path: Path, emulator: ServerThread) -> None:
    healthy = emu_state(emulator)
    refusing = create_emulator_app(Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL]))
    refusing.state.emulator.faults.update({"reject_event": "ViewContent"})
    slow = HoldsSingles(refusing)
    batch = 32
    # Long enough that no held request is cut off while the test looks.
    delivery = dataclasses.replace(FAST_DELIVERY, request_timeout_s=120.0)
    with ServerThread(slow) as slow_server:
        settings = make_settings(tmp_path / "iso.db", emulator.url, name="healthy",
                                 batch_size=batch, delivery=delivery)
        settings = dataclasses.replace(settings, destinations=(
            *settings.destinations,
            dataclasses.replace(settings.destinations[0], name="slow",
                                api_url=slow_server.url)))
        with ServerThread(create_app(settings)) as gw:
            try:
                # 4 batches of 32 rejected, bisected down to 128 single requests: more than
                # one pool holds. The slow destination fills its pool and waits there.
                first = post(gw.url, "a", 4 * batch)
                wait_for(lambda: slow.held >= MAX_CONNECTIONS, timeout=30)
                wait_for(lambda: {e["event_id"] for e in healthy.events} >= first, timeout=30)

                # While every connection of the slow one stays held, the healthy one sends
                # a new backlog in full batches, as it would alone.
                before = len(healthy.requests)
                second = post(gw.url, "b", 3 * batch)
                wait_for(lambda: {e["event_id"] for e in healthy.events} >= first | second,
                         timeout=30)
                assert slow.held == MAX_CONNECTIONS  # still all held: none went elsewhere
                sizes = [r.n_events for r in healthy.requests[before:]]
                assert sum(sizes) == 3 * batch and max(sizes) == batch
                assert healthy.duplicates == 0
            finally:
                slow.released = True  # let held requests go, or shutdown waits for them
