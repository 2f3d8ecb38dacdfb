"""A TikTok that takes the request and never answers: cut off, retried, and nobody else waits."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from pixelrelay.app import create_app
from pixelrelay.emulator import Emulator, create_emulator_app
from tests.conftest import (
    ACCESS_TOKEN,
    ADMIN_TOKEN,
    FAST_DELIVERY,
    PIXEL,
    SOURCE_KEY,
    emu_state,
    make_settings,
)
from tests.support import ServerThread, wait_for

# Long enough that the healthy destination is done long before the first cut-off, even on a
# loaded machine; the cut-off itself is what the second half of the test waits for.
TIMEOUT_S = 5.0


def test_a_hanging_tiktok_is_cut_off_retried_and_blocks_no_other_destination(
        tmp_path: Path, emulator: ServerThread) -> None:
    healthy = emu_state(emulator)
    hanging_app = create_emulator_app(Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL]))
    stuck: Emulator = hanging_app.state.emulator
    stuck.faults.update({"hang": True})
    ids = [f"h{i}" for i in range(20)]
    now = int(time.time())
    with ServerThread(hanging_app) as hang_server:
        settings = make_settings(tmp_path / "h.db", emulator.url, name="healthy",
                                 delivery=dataclasses.replace(FAST_DELIVERY,
                                                              request_timeout_s=TIMEOUT_S))
        settings = dataclasses.replace(settings, destinations=(
            *settings.destinations,
            dataclasses.replace(settings.destinations[0], name="stuck",
                                api_url=hang_server.url)))
        try:
            with ServerThread(create_app(settings)) as gw:
                def deliveries(event_id: str) -> dict[str, dict[str, Any]]:
                    r = httpx.get(f"{gw.url}/v1/deliveries", params={"event_id": event_id},
                                  headers={"X-Admin-Token": ADMIN_TOKEN})
                    return {d["destination"]: d for d in r.json()["deliveries"]}

                r = httpx.post(f"{gw.url}/v1/events",
                               headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                               content=orjson.dumps({"events": [
                                   {"event": "ViewContent", "event_id": e, "timestamp": now}
                                   for e in ids]}))
                assert r.status_code == 202 and r.json()["accepted"] == 20

                wait_for(lambda: stuck.hanging >= 1)  # the request went out and is held
                wait_for(lambda: {e["event_id"] for e in healthy.events} == set(ids))
                # The healthy destination delivered while the other's first request still hung.
                assert deliveries("h0")["stuck"]["attempts"] == 0

                def cut_off() -> bool:
                    view = deliveries("h0")["stuck"]
                    return bool(view["attempts"] >= 1)

                wait_for(cut_off, timeout=6 * TIMEOUT_S)
                view = deliveries("h0")["stuck"]
                assert view["state"] in ("pending", "in_flight")  # retryable: it tries again
                assert view["last_http_status"] is None
                assert str(view["last_message"]).startswith("timeout")

                stuck.faults.update({"hang": False})  # TikTok answers again
                wait_for(lambda: {e["event_id"] for e in stuck.events} == set(ids),
                         timeout=6 * TIMEOUT_S)
                assert len(stuck.events) == 20 and stuck.duplicates == 0
                assert all(deliveries(e)["stuck"]["state"] == "delivered" for e in ids)
        finally:
            stuck.faults.update({"hang": False})  # let held requests go, or shutdown waits
    assert len(healthy.events) == 20


def test_the_hang_fault_takes_only_true_or_false(emulator: ServerThread) -> None:
    r = httpx.post(f"{emulator.url}/faults", json={"hang": 1})
    assert r.status_code == 400 and r.json() == {"error": "hang: must be true or false"}
    assert httpx.get(f"{emulator.url}/faults").json()["hang"] is False
