"""Delivery under injected faults: everything good arrives once, the poisoned event is dead."""

from __future__ import annotations

import time

import httpx
import orjson

from pixelrelay.app import create_app
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, emu_state, make_settings
from tests.support import ServerThread, wait_for


def test_thirty_percent_faults_and_a_poisoned_event(storage_url: str,
                                                    emulator: ServerThread) -> None:
    emu = emu_state(emulator)
    httpx.post(f"{emulator.url}/faults", json={"http_5xx_rate": 0.1, "code_40100_rate": 0.1,
                                               "code_50000_rate": 0.1, "reject_event": "Search"})
    app = create_app(make_settings(storage_url, emulator.url, batch_size=50))
    now = int(time.time())
    events = [{"event": "ViewContent", "event_id": f"v{i}", "timestamp": now,
               "properties": {"contents": [{"content_id": f"SKU{i}", "price": 1.5}]}}
              for i in range(299)]
    events.insert(137, {"event": "Search", "event_id": "poison", "timestamp": now})
    with ServerThread(app) as gw:
        for chunk in range(0, 300, 100):
            r = httpx.post(f"{gw.url}/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                           content=orjson.dumps({"events": events[chunk:chunk + 100]}))
            assert r.status_code == 202 and r.json()["accepted"] == 100

        def good_ids() -> set[str]:
            return {e["event_id"] for e in emu.events}

        wait_for(lambda: len(good_ids()) == 299, timeout=60)
        assert good_ids() == {f"v{i}" for i in range(299)}
        assert len(emu.events) == 299  # each recorded once (TikTok-side dedup absorbs re-sends)

        def poison_state() -> dict[str, object]:
            return dict(httpx.get(f"{gw.url}/v1/deliveries", params={"event_id": "poison"},
                                  headers={"X-Admin-Token": ADMIN_TOKEN}).json()["deliveries"][0])

        wait_for(lambda: poison_state()["state"] == "dead", timeout=30)
        dead = poison_state()
        assert dead["last_code"] == 40002
        assert "event" in str(dead["last_message"])
    codes = {r.code for r in emu.requests}
    assert {0, 40100, 50000, 40002} <= codes  # faults really happened
