"""The ingest endpoints' POSTs skip Starlette's middleware and router (app._HotRoutesApp); every
other way to reach those paths still takes the routes, and the POSTs still pass the Edge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pixelrelay import metrics
from pixelrelay.app import create_app
from tests.conftest import SOURCE_KEY, make_settings
from tests.support import ServerThread

EVENTS = "/v1/events"
TRACK = "/open_api/v1.3/event/track/"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(create_app(make_settings(tmp_path / "gw.db", "http://127.0.0.1:9"),
                                 delivery=False)) as server:
        yield server


def requests_seen(path: str, status: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "pixelrelay_http_request_duration_seconds_count",
        {"method": "POST", "path": path, "status": status}) or 0.0


def test_other_methods_and_spellings_take_the_routes(gateway: ServerThread) -> None:
    for path in (EVENTS, TRACK):
        r = httpx.get(f"{gateway.url}{path}")
        assert r.status_code == 405 and r.headers["allow"] == "POST", path
    # Without the trailing slash: Starlette's redirect to the route, as before the shortcut.
    r = httpx.post(f"{gateway.url}{TRACK.rstrip('/')}", json={})
    assert r.status_code == 307 and r.headers["location"].endswith(TRACK)


def test_the_posts_are_answered_and_counted(gateway: ServerThread) -> None:
    before = requests_seen(EVENTS, "202"), requests_seen(TRACK, "200")
    r = httpx.post(f"{gateway.url}{EVENTS}", json={"event": "ViewContent", "event_id": "hot-1"},
                   headers={"Authorization": f"Bearer {SOURCE_KEY}"})
    assert r.status_code == 202 and r.json()["accepted"] == 1
    r = httpx.post(f"{gateway.url}{TRACK}", json={}, headers={"Access-Token": SOURCE_KEY})
    assert r.status_code == 200 and r.json()["code"] == 40002  # TikTok's answer to no data
    assert (requests_seen(EVENTS, "202"), requests_seen(TRACK, "200")) == (
        before[0] + 1, before[1] + 1)
