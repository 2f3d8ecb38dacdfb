"""`pixelrelay serve` as a subprocess: kill -9 right after the 202s, restart, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from pixelrelay.delivery.worker import PARALLEL_REQUESTS
from tests.support import free_port, wait_for

TOKEN, PIXEL, KEY = "e2e-access-token", "E2EPIXEL0000001", "e2e-source-key"


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pixelrelay.cli", *args],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})


def wait_http(url: str) -> None:
    def up() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=20)


@pytest.fixture
def emulator_proc(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = spawn(["emulator", "--port", str(port), "--token", TOKEN, "--pixel", PIXEL],
                 tmp_path / "emulator.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/stats")
        yield url
    finally:
        proc.kill()
        proc.wait()


def test_kill9_after_202_then_restart_delivers_every_accepted_event(
        tmp_path: Path, emulator_proc: str) -> None:
    # Slow TikTok down so that, at the kill, events are both queued and in flight.
    httpx.post(f"{emulator_proc}/faults", json={"latency_ms": 300})
    port = free_port()
    config = tmp_path / "pixelrelay.toml"
    config.write_text(f"""
[server]
port = {port}
[storage]
url = "sqlite:///{tmp_path / 'queue.db'}"
[[sources]]
name = "backend"
kind = "server"
key = "${{E2E_KEY}}"
[[destinations]]
name = "tiktok"
pixel_code = "{PIXEL}"
access_token = "${{E2E_TOKEN}}"
api_url = "{emulator_proc}"
batch_size = 20
[delivery]
flush_interval_s = 0.05
retry_base_s = 0.1
retry_cap_s = 0.5
""")
    env = {"E2E_KEY": KEY, "E2E_TOKEN": TOKEN}
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    serve = spawn(["serve", "--config", str(config)], log, env)
    wait_http(f"{url}/healthz")

    accepted: set[str] = set()

    def send(i: int) -> list[str]:
        body = {"events": [{"event": "AddToCart", "event_id": f"k{i}-{j}",
                            "user": {"email": f"user{i}@example.com"}} for j in range(5)]}
        r = httpx.post(f"{url}/v1/events", content=orjson.dumps(body), timeout=10,
                       headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 202
        return [eid for eid in r.json()["event_ids"]] if r.json()["accepted"] == 5 else []

    with ThreadPoolExecutor(8) as pool:
        for ids in pool.map(send, range(60)):
            accepted.update(ids)
    os.kill(serve.pid, signal.SIGKILL)  # right after the last 202
    serve.wait()
    assert len(accepted) == 300

    delivered_before = {e["event_id"] for e in httpx.get(f"{emulator_proc}/events").json()}
    assert len(delivered_before) < 300, "the kill came too late to prove anything"

    serve = spawn(["serve", "--config", str(config)], log, env)
    try:
        wait_http(f"{url}/healthz")

        def delivered() -> set[str]:
            return {e["event_id"] for e in httpx.get(f"{emulator_proc}/events").json()}

        wait_for(lambda: delivered() >= accepted, timeout=60, interval=0.2)
        assert delivered() == accepted
        stats = httpx.get(f"{emulator_proc}/stats").json()
        # Re-sends are only the batches that were in flight at the kill (batch_size 20 each).
        assert stats["duplicates"] <= 20 * PARALLEL_REQUESTS
    finally:
        serve.kill()
        serve.wait()
    assert KEY not in log.read_text() and TOKEN not in log.read_text()
