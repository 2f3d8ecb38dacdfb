"""`serve --no-delivery` and `deliver` as separate processes on one SQLite file: what one
process accepts another delivers, a pause set by one is seen and lifted from another, and
SQLite's one delivery owner per file."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.store import open_store
from tests.conftest import ACCESS_TOKEN, ADMIN_TOKEN, PIXEL, SOURCE_KEY, emu_state
from tests.e2e.test_kill9 import spawn, wait_http
from tests.support import ServerThread, free_port, wait_for

ENV = {"SPLIT_TEST_TOKEN": ACCESS_TOKEN, "SPLIT_ADMIN_TOKEN": ADMIN_TOKEN}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}


def write_config(path: Path, db: Path, port: int, api_url: str) -> Path:
    path.write_text(f"""
[server]
port = {port}
admin_token = "${{SPLIT_ADMIN_TOKEN}}"
[storage]
url = "sqlite:///{db}"
[[sources]]
name = "backend"
key = "{SOURCE_KEY}"
[[destinations]]
name = "tiktok"
pixel_code = "{PIXEL}"
access_token = "${{SPLIT_TEST_TOKEN}}"
api_url = "{api_url}"
batch_size = 20
[delivery]
flush_interval_s = 0.02
retry_base_s = 0.05
retry_cap_s = 0.2
""")
    return path


class Processes:
    """The pixelrelay processes a test started; each one is stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = spawn(list(args), self.log(name), ENV)
        self.started.append(proc)
        return proc

    def log(self, name: str) -> Path:
        return self.tmp_path / f"{name}.log"

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


def post_events(url: str, prefix: str, n: int) -> set[str]:
    body = {"events": [{"event": "AddToCart", "event_id": f"{prefix}{i}",
                        "user": {"email": f"{prefix}{i}@example.com"}} for i in range(n)]}
    r = httpx.post(f"{url}/v1/events", content=orjson.dumps(body), timeout=10,
                   headers={"Authorization": f"Bearer {SOURCE_KEY}"})
    assert r.status_code == 202 and r.json()["accepted"] == n, r.text
    return set(r.json()["event_ids"])


def delivered_ids(emulator: ServerThread) -> set[str]:
    return {e["event_id"] for e in emu_state(emulator).events}


def destination(api: str) -> dict[str, Any]:
    r = httpx.get(f"{api}/v1/diagnostics", params={"window": "1h"}, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    (d,) = r.json()["destinations"]
    alerts = {a["key"] for a in r.json()["alerts"]}
    return {**d, "paused_alert": "paused:tiktok" in alerts}


def metric(text: str, sample: str) -> float:
    """The value of the one sample of a Prometheus exposition that starts with `sample`."""
    (value,) = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(sample)]
    return value


def live_delivery_processes(db: Path) -> int:
    """How many delivery processes the database counts alive (a probe's own beat removed)."""

    async def count() -> int:
        store = open_store(f"sqlite:///{db}", recover_in_flight=False)
        await store.open()
        try:
            live = await store.heartbeat("test-probe", "delivery", time.time(), 15.0)
            await store.leave("test-probe")
            return live - 1
        finally:
            await store.close()

    return asyncio.run(count())


def test_events_posted_to_api_processes_are_delivered_by_the_deliver_process(
        tmp_path: Path, emulator: ServerThread, procs: Processes) -> None:
    db = tmp_path / "queue.db"
    api_port, api2_port, probe_port = free_port(), free_port(), free_port()
    config = str(write_config(tmp_path / "c.toml", db, api_port, emulator.url))
    migrate = procs.start("migrate", "migrate", "--config", config)
    assert migrate.wait(timeout=60) == 0, procs.log("migrate").read_text()

    deliver = procs.start("deliver", "deliver", "--config", config, "--port", str(probe_port))
    # Two API processes on one SQLite file: neither owns it, both accept.
    procs.start("api", "serve", "--no-delivery", "--config", config)
    procs.start("api2", "serve", "--no-delivery", "--config", config, "--port", str(api2_port))
    api, api2 = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{api2_port}"
    probe = f"http://127.0.0.1:{probe_port}"
    for url in (api, api2, probe):
        wait_http(f"{url}/healthz")
    assert live_delivery_processes(db) == 1  # deliver beats; API processes do not deliver

    accepted = post_events(api, "a", 40) | post_events(api2, "b", 40)
    # Nothing in the API processes wakes the deliver process: it finds the rows by itself.
    wait_for(lambda: delivered_ids(emulator) >= accepted, timeout=30, interval=0.1)
    assert delivered_ids(emulator) == accepted
    assert emu_state(emulator).stats()["duplicates"] == 0

    # Delivery counters are the deliver process's; the queue gauges come from the database,
    # so every process shows the same (empty) queue.
    probe_metrics = httpx.get(f"{probe}/metrics").text
    assert metric(probe_metrics, 'pixelrelay_events_delivered_total{destination="tiktok"') == 80
    for url in (api, probe):
        text = httpx.get(f"{url}/metrics").text
        assert metric(text, 'pixelrelay_queue_depth{destination="tiktok",state="pending"}') == 0
    assert "pixelrelay_events_delivered_total{" not in httpx.get(f"{api}/metrics").text
    # The probe port serves only probes: no API there.
    assert httpx.post(f"{probe}/v1/events", content=b"{}").status_code == 404

    # A second delivery process on a SQLite file is refused, naming the owner.
    second = procs.start("deliver2", "deliver", "--config", config)
    assert second.wait(timeout=60) == 2
    said = procs.log("deliver2").read_text()
    assert f"database {db} is already in use by another pixelrelay (pid {deliver.pid} " in said
    assert "Traceback" not in said
    # ... as is a serve that would deliver.
    serve = procs.start("serve", "serve", "--config", config, "--port", str(free_port()))
    assert serve.wait(timeout=60) == 2

    # A clean stop hands the delivery share back at once, and exits 0.
    deliver.send_signal(signal.SIGTERM)
    assert deliver.wait(timeout=30) == 0
    assert live_delivery_processes(db) == 0
    for log in ("deliver", "api", "api2"):
        text = procs.log(log).read_text()
        assert "Traceback" not in text and ACCESS_TOKEN not in text and ADMIN_TOKEN not in text
        assert "a0@example.com" not in text


def test_a_pause_set_by_deliver_shows_on_the_api_process_and_its_resume_lifts_it(
        tmp_path: Path, emulator: ServerThread, procs: Processes) -> None:
    db = tmp_path / "queue.db"
    api_port = free_port()
    config = str(write_config(tmp_path / "c.toml", db, api_port, emulator.url))
    assert procs.start("migrate", "migrate", "--config", config).wait(timeout=60) == 0
    procs.start("deliver", "deliver", "--config", config)  # no HTTP at all
    procs.start("api", "serve", "--no-delivery", "--config", config)
    api = f"http://127.0.0.1:{api_port}"
    wait_http(f"{api}/healthz")
    assert destination(api)["state"] == "active"

    emu = emu_state(emulator)
    emu.faults.update({"setup_error_code": 40001})  # no permission on the pixel
    first = post_events(api, "p", 10)
    wait_for(lambda: destination(api)["state"] == "paused", timeout=30, interval=0.1)
    paused = destination(api)
    assert paused["paused_reason"].startswith("40001")
    assert paused["paused_alert"]
    assert paused["queue_depth"] == 10  # the queue waits, nothing lost
    refused = emu.stats()["requests"]
    assert refused >= 1 and not delivered_ids(emulator)

    second = post_events(api, "q", 10)  # accepted while paused: queued, not sent
    emu.faults.update({"setup_error_code": None})  # the permission was granted
    r = httpx.post(f"{api}/v1/destinations/tiktok/resume", headers=ADMIN, timeout=10)
    assert r.status_code == 200 and r.json() == {"destination": "tiktok", "resumed": True}
    # The deliver process reads the lifted pause from the database and sends the queue.
    wait_for(lambda: delivered_ids(emulator) >= first | second, timeout=30, interval=0.1)
    after = destination(api)
    assert after["state"] == "active" and not after["paused_alert"]
    assert emu.stats()["duplicates"] == 0


def test_the_split_commands_refuse_what_cannot_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pixelrelay.cli import main

    monkeypatch.delenv("PIXELRELAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["deliver"]) == 2  # the sandbox's emulator lives in its serve
    assert "deliver needs a config" in capsys.readouterr().err
    assert main(["serve", "--no-delivery"]) == 2
    assert "--no-delivery needs a config" in capsys.readouterr().err
    assert main(["deliver", "--host", "0.0.0.0"]) == 2
    assert "--host goes with --port" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.db*"))  # nothing was opened
