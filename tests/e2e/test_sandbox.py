"""The README's first command as a newcomer runs it: `pixelrelay serve` with no config, in an
empty folder, then what its banner says to do (post, watch the emulator, follow the delivery,
open the dashboard with the token it names)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, wait_for


@contextlib.contextmanager
def serve_sandbox(folder: Path, log_name: str = "serve.log") -> Iterator[tuple[str, Path]]:
    """`pixelrelay serve` without a config in `folder`, until its banner is printed."""
    port = free_port()
    log = folder / log_name
    env = {k: v for k, v in os.environ.items() if k != "PIXELRELAY_CONFIG"}
    proc = subprocess.Popen([sys.executable, "-m", "pixelrelay.cli", "serve", "--port", str(port)],
                            cwd=folder, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: "For production" in log.read_text(), timeout=20)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with serve_sandbox(tmp_path) as running:
        yield running


def test_the_banner_s_steps_work_in_an_empty_folder(sandbox: tuple[str, Path],
                                                     tmp_path: Path) -> None:
    base, log = sandbox
    banner = log.read_text()
    key = re.search(r"Authorization: Bearer (\S+?)'", banner)
    dashboard = re.search(r"Dashboard: open (\S+) and sign in with the admin token (\S+)", banner)
    assert key and dashboard, banner
    assert dashboard.group(1) == f"{base}/"
    assert (tmp_path / "pixelrelay.db").exists()  # "SQLite here"

    answer = httpx.post(f"{base}/v1/events", headers={"Authorization": f"Bearer {key.group(1)}"},
                        json={"event": "Purchase", "user": {"email": " Customer@Example.com "},
                              "properties": {"order_id": "1001", "value": 9.5,
                                             "currency": "EUR"}})
    assert answer.status_code == 202, answer.text
    assert answer.json()["event_ids"] == ["ord_1001_complete_payment"]

    def arrived() -> bool:
        return bool(httpx.get(f"{base}/_emulator/events").json())

    wait_for(arrived, timeout=10)
    sent = httpx.get(f"{base}/_emulator/events").json()[0]
    assert sent["event"] == "CompletePayment"
    assert sent["user"]["email"] == [hashlib.sha256(b"customer@example.com").hexdigest()]
    deliveries = httpx.get(f"{base}/v1/deliveries",
                           params={"event_id": "ord_1001_complete_payment"},
                           headers={"Authorization": f"Bearer {key.group(1)}"}).json()
    # Without a config every destination type runs against its emulator: TikTok and Meta.
    wait_for(lambda: bool(httpx.get(f"{base}/_meta/events").json()), timeout=10)
    meta = httpx.get(f"{base}/_meta/events").json()[0]
    assert (meta["event_name"], meta["event_id"]) == ("Purchase", "ord_1001_complete_payment")
    assert meta["user_data"]["em"] == [hashlib.sha256(b"customer@example.com").hexdigest()]
    deliveries = httpx.get(f"{base}/v1/deliveries",
                           params={"event_id": "ord_1001_complete_payment"},
                           headers={"Authorization": f"Bearer {key.group(1)}"}).json()
    assert sorted((d["destination"], d["state"]) for d in deliveries["deliveries"]) == [
        ("sandbox", "delivered"), ("sandbox-meta", "delivered")]

    with httpx.Client(base_url=base) as browser:
        assert browser.post("/login", data={"token": "wrong"}).status_code == 401
        signed_in = browser.post("/login", data={"token": dashboard.group(2)},
                                 follow_redirects=True)
        assert signed_in.status_code == 200
        assert "sandbox" in signed_in.text and "SANDBOXPIXEL000" in signed_in.text


def test_after_a_restart_the_banner_explains_the_empty_emulator_and_the_duplicate(
        tmp_path: Path) -> None:
    """The README's curl run again after a restart: the emulator (in memory) has forgotten
    the event, the gateway (on disk) has not. The banner says so before anyone wonders."""
    event = {"event": "Purchase", "user": {"email": "you@example.com"},
             "properties": {"order_id": "1001", "value": 9.5, "currency": "EUR"}}
    with serve_sandbox(tmp_path, "first.log") as (base, log):
        key = re.search(r"Authorization: Bearer (\S+?)'", log.read_text())
        assert key
        auth = {"Authorization": f"Bearer {key.group(1)}"}
        assert httpx.post(f"{base}/v1/events", headers=auth, json=event).json()[
            "duplicates"] == 0
        wait_for(lambda: bool(httpx.get(f"{base}/_emulator/events").json()), timeout=10)
    with serve_sandbox(tmp_path, "second.log") as (base, log):
        banner = " ".join(log.read_text().split())
        assert ("The emulators keep what they received in memory: after a restart "
                "/_emulator/events starts empty, while the gateway remembers event ids for "
                '48 h (a repeat answers "duplicates":1).') in banner
        assert httpx.get(f"{base}/_emulator/events").json() == []
        again = httpx.post(f"{base}/v1/events", headers=auth, json=event)
        assert again.status_code == 202
        assert again.json()["duplicates"] == 1
