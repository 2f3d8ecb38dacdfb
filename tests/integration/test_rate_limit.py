"""Per-source rate limits: 429 with Retry-After, and nothing over the limit is stored."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx

from pixelrelay.app import create_app
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, make_settings
from tests.support import ServerThread


def test_source_over_its_rate_gets_429_with_retry_after(tmp_path: Path,
                                                        emulator: ServerThread) -> None:
    settings = make_settings(tmp_path / "r.db", emulator.url)
    # One event per 5 s: the refill cannot hide the limit however slow this machine is.
    limited = dataclasses.replace(settings.sources[0], rate_limit=0.2)
    with ServerThread(create_app(dataclasses.replace(settings, sources=(limited,)))) as gw:
        def post(event_id: str) -> httpx.Response:
            return httpx.post(f"{gw.url}/v1/events",
                              headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                              json={"event": "ViewContent", "event_id": event_id})

        statuses = [post(f"r{i}").status_code for i in range(3)]
        assert statuses == [202, 429, 429]  # the burst (at least one event) passes at once
        refused = post("over")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "0.2 events/s" in refused.json()["reason"]
        log = httpx.get(f"{gw.url}/v1/deliveries", params={"event_id": "over"},
                        headers={"X-Admin-Token": ADMIN_TOKEN}).json()
        assert log["deliveries"] == []  # refused means not stored
