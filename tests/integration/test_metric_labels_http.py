"""/metrics over real HTTP stays bounded whatever event names the public site key sends: an
invented name counts as `other`, a standard or configured (event_map) name keeps its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from tests.conftest import emu_state, make_settings
from tests.log_capture import captured_logs
from tests.support import ServerThread, wait_for

SITE_KEY = "labels-site-key-0001"
EVENT_MAP = {"Newsletter Signup": "CustomSignup"}
MADE_UP = 3000


def series(text: str) -> set[str]:
    """Each sample line's name and labels: one per series."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def invented(i: int) -> str:
    """Made-up names, some holding an email, as a stranger with the site key may send."""
    return f"signup zz{i}@example.com" if i % 3 == 0 else f"zz-made-up-{i:05d}"


@pytest.fixture
def gateway(tmp_path: Path, emulator: ServerThread) -> Iterator[tuple[httpx.Client,
                                                                     ServerThread]]:
    base = make_settings(tmp_path / "m.db", emulator.url, event_map=EVENT_MAP)
    settings = dataclasses.replace(base, sources=(
        *base.sources, SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY))))
    server = ServerThread(create_app(settings))
    with server, captured_logs() as logs, httpx.Client(base_url=server.url,
                                                         timeout=30) as client:
        yield client, emulator
    assert logs.tracebacks() == []


def hit(client: httpx.Client, name: str, **extra: object) -> None:
    r = client.post("/v1/collect", content=orjson.dumps({"k": SITE_KEY, "event": name,
                                                         **extra}))
    assert r.status_code == 202, r.text


def drained(client: httpx.Client) -> bool:
    """Nothing left to deliver: every count the delivery makes is in /metrics."""
    text = client.get("/metrics").text
    return all(f'pixelrelay_queue_depth{{destination="tiktok",state="{state}"}} 0.0' in text
               for state in ("pending", "in_flight"))


def test_invented_event_names_add_no_series(gateway: tuple[httpx.Client,
                                                            ServerThread]) -> None:
    client, emulator = gateway
    # Warm up: the first invented names make the `other` series, once.
    for i in range(30):
        hit(client, invented(i))
    for name in ("ViewContent", "Newsletter Signup"):
        hit(client, name, event_id=f"same-{name}")
        hit(client, name, event_id=f"same-{name}")  # a duplicate: counted by incoming name
    wait_for(lambda: drained(client), timeout=30)
    before = client.get("/metrics").text
    for i in range(30, 30 + MADE_UP):
        hit(client, invented(i))
    wait_for(lambda: drained(client), timeout=60)
    after = client.get("/metrics").text

    grown = series(after) - series(before)
    assert len(grown) <= 5, sorted(grown)  # was one per name and counter: over 6,000
    assert "zz-made-up" not in after and "@" not in after and "example.com" not in after
    assert 'pixelrelay_events_received_total{destination="tiktok",event="other"}' in after
    assert len(emu_state(emulator).events) >= 2 + 2 * (MADE_UP + 30) // 3  # all went through
    # A configured name keeps a label of its own: its TikTok name, routed or not (a duplicate
    # is counted under the first destination's name for it); standard names as ever.
    assert 'pixelrelay_events_received_total{destination="tiktok",event="CustomSignup"}' in after
    assert 'pixelrelay_events_duplicate_total{event="CustomSignup"}' in after
    assert 'pixelrelay_events_delivered_total{destination="tiktok",event="ViewContent"}' \
        in after
