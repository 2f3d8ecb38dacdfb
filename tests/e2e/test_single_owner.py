"""`pixelrelay serve` as subprocesses: one owner per SQLite file, and the port before anything."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import httpx
import orjson

from pixelrelay.config import Secret
from pixelrelay.store import open_store
from pixelrelay.store.base import DestinationState
from pixelrelay.store.rows import QueueRow
from tests.conftest import ACCESS_TOKEN, PIXEL, SOURCE_KEY, emu_state
from tests.e2e.test_kill9 import spawn, wait_http
from tests.support import ServerThread, free_port, wait_for

ENV = {"OWNER_TEST_TOKEN": ACCESS_TOKEN}


def write_config(path: Path, db: Path, port: int, api_url: str) -> Path:
    path.write_text(f"""
[server]
port = {port}
[storage]
url = "sqlite:///{db}"
[[sources]]
name = "backend"
key = "{SOURCE_KEY}"
[[destinations]]
name = "tiktok"
pixel_code = "{PIXEL}"
access_token = "${{OWNER_TEST_TOKEN}}"
api_url = "{api_url}"
batch_size = 20
[delivery]
flush_interval_s = 0.02
retry_base_s = 0.05
retry_cap_s = 0.2
""")
    return path


def post_events(url: str, n: int) -> set[str]:
    ids: set[str] = set()
    for i in range(0, n, 10):
        body = {"events": [{"event": "AddToCart", "event_id": f"o{i + j}"} for j in range(10)]}
        r = httpx.post(f"{url}/v1/events", content=orjson.dumps(body), timeout=10,
                       headers={"Authorization": f"Bearer {SOURCE_KEY}"})
        assert r.status_code == 202 and r.json()["accepted"] == 10, r.text
        ids.update(r.json()["event_ids"])
    return ids


def test_a_second_serve_on_the_same_database_exits_naming_the_first_and_sends_nothing(
        tmp_path: Path, emulator: ServerThread) -> None:
    # A slow TikTok keeps the first gateway's batches in flight while the second one starts:
    # without the lock, the second one took them back on start and sent them again.
    httpx.post(f"{emulator.url}/faults", json={"latency_ms": 1500})
    db = tmp_path / "queue.db"
    port = free_port()
    config = write_config(tmp_path / "c.toml", db, port, emulator.url)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = spawn(["serve", "--config", str(config)], first_log, ENV)
    second: subprocess.Popen[bytes] | None = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz")
        accepted = post_events(url, 100)

        second_port = free_port()
        second = spawn(["serve", "--config", str(config), "--port", str(second_port)],
                       second_log, ENV)
        assert second.wait(timeout=60) == 2
        said = second_log.read_text()
        assert f"database {db} is already in use by another pixelrelay (pid {first.pid} " in said
        assert "listening" not in said and "Traceback" not in said

        httpx.post(f"{emulator.url}/faults", json={"latency_ms": 0})
        wait_for(lambda: {e["event_id"] for e in emu_state(emulator).events} >= accepted,
                 timeout=60, interval=0.2)
        assert emu_state(emulator).stats()["duplicates"] == 0  # each event sent exactly once
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:  # a second one that did not exit
                proc.kill()
                proc.wait()


def test_a_serve_whose_port_is_taken_starts_nothing(tmp_path: Path,
                                                    emulator: ServerThread) -> None:
    db = tmp_path / "queue.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "c.toml", db, port, emulator.url)
        # Work waiting in the database: queued events, and a pause under an older token that
        # a started worker would lift (its token differs) before delivering the queue.
        events = tmp_path / "events.jsonl"
        events.write_text("".join(orjson.dumps({"event": "AddToCart", "event_id": f"q{i}"})
                                  .decode() + "\n" for i in range(30)))
        imported = spawn(["import", str(events), "--config", str(config)],
                         tmp_path / "import.log", ENV)
        assert imported.wait(timeout=60) == 0, (tmp_path / "import.log").read_text()
        paused = DestinationState(name="tiktok", paused=True, reason="40001 no permission",
                                  token_fingerprint=Secret("an older token").fingerprint(),
                                  updated_at=1_000.0)
        asyncio.run(set_state(f"sqlite:///{db}", paused))

        log = tmp_path / "serve.log"
        serve = spawn(["serve", "--config", str(config)], log, ENV)
        try:
            assert serve.wait(timeout=60) == 2
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait()
    said = log.read_text()
    assert f"127.0.0.1:{port}: cannot listen" in said
    assert "listening" not in said and "Traceback" not in said
    state, stats = asyncio.run(read_state(f"sqlite:///{db}"))
    assert state == paused
    assert stats.pending == 30 and stats.in_flight == 0
    assert emu_state(emulator).stats()["requests"] == 0
    assert not (tmp_path / "queue.db.lock").exists()  # the store was never opened as owner


async def set_state(url: str, state: DestinationState) -> None:
    store = open_store(url, recover_in_flight=False)
    await store.open()
    try:
        await store.set_destination(state)
    finally:
        await store.close()


async def read_state(url: str) -> tuple[DestinationState | None, QueueRow]:
    store = open_store(url, recover_in_flight=False)
    await store.open()
    try:
        (queue,) = await store.queues(["tiktok"])
        return await store.get_destination("tiktok"), queue
    finally:
        await store.close()
