"""The ingest endpoints (the API, both drop-ins, /v1/collect) skip Starlette's middleware and
router (app._HotRoutesApp); every other way to reach those paths still takes the routes, and
the hot requests still pass the Edge."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixelrelay import metrics
from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from pixelrelay.destinations.meta.settings import meta_destination
from tests.conftest import SOURCE_KEY, make_settings
from tests.support import ServerThread

EVENTS = "/v1/events"
TRACK = "/open_api/v1.3/event/track/"
PIXEL_ID = "123456789012345"
GRAPH = f"/v25.0/{PIXEL_ID}/events"
COLLECT = "/v1/collect"
SITE_KEY, ORIGIN = "hot-site-key", "https://shop.example"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[ServerThread]:
    base = make_settings(tmp_path / "gw.db", "http://127.0.0.1:9")
    settings = dataclasses.replace(
        base, destinations=(*base.destinations, meta_destination(
            name="meta", access_token=Secret("m"), pixel_id=PIXEL_ID,
            api_url="http://127.0.0.1:9")),
        sources=(*base.sources, SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY),
                                               allowed_origins=(ORIGIN,))))
    with ServerThread(create_app(settings, delivery=False)) as server:
        yield server


class CountingStack:
    """Stands in front of Starlette's middleware stack and counts the requests it sees."""

    def __init__(self, stack: Any) -> None:
        self.stack, self.requests = stack, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.requests += scope["type"] == "http"
        await self.stack(scope, receive, send)


def test_the_ingest_endpoints_never_enter_starlettes_stack(gateway: ServerThread) -> None:
    app = gateway.server.config.app
    counting = app.middleware_stack = CountingStack(app.middleware_stack)
    key = {"Authorization": f"Bearer {SOURCE_KEY}"}
    event = {"event": "ViewContent", "event_id": "hot-2"}
    assert httpx.post(f"{gateway.url}{EVENTS}", json=event, headers=key).status_code == 202
    r = httpx.post(f"{gateway.url}{GRAPH}", params={"access_token": SOURCE_KEY}, json={
        "data": [{"event_name": "Purchase", "event_time": 1, "action_source": "website"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100  # refused: it got there
    site = {"X-Pixelrelay-Key": SITE_KEY, "Origin": ORIGIN}
    r = httpx.post(f"{gateway.url}{COLLECT}", json={"event": "PageView"}, headers=site)
    assert r.status_code == 202 and "set-cookie" in r.headers
    r = httpx.options(f"{gateway.url}{COLLECT}", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert counting.requests == 0
    # Everything else still goes through Starlette: a route, a method, a spelling.
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    assert httpx.get(f"{gateway.url}{GRAPH}").status_code == 405
    assert httpx.post(f"{gateway.url}/v25.0/{PIXEL_ID}/events/").status_code in (307, 404)
    assert counting.requests == 3


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
