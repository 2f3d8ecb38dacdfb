"""`serve --workers N`: N processes on one port that the kernel spreads connections over, one
of them delivering; the supervisor stops the group on a signal, when a worker dies, and the
workers stop when the supervisor is killed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import orjson

from tests.conftest import SOURCE_KEY, emu_state, postgres_url
from tests.e2e.test_kill9 import wait_http
from tests.e2e.test_split_processes import (
    Processes,
    delivered_ids,
    live_delivery_processes,
    procs,
    write_config,
)
from tests.support import ServerThread, free_port, wait_for

__all__ = ["procs"]  # the fixture, imported to be used here


def worker_pids(proc: subprocess.Popen[bytes], log: Path, n: int) -> list[int]:
    """The pids the supervisor's start line names, once it has printed it."""
    found: list[int] = []

    def printed() -> bool:
        m = re.search(rf"{n} workers on .* \(pids ([\d, ]+)\)", log.read_text())
        if m:
            found[:] = [int(p) for p in m.group(1).split(", ")]
        return bool(m) or proc.poll() is not None

    wait_for(printed, timeout=30)
    assert len(found) == n, log.read_text()
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def serving_pids(port: int, pids: list[int]) -> set[int]:
    """Which of `pids` hold an established connection on local `port` (from /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                    inodes.add(cols[9])
    held: set[int] = set()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held.add(pid)
    return held


def post_over_connections(api: str, port: int, pids: list[int],
                          bodies: list[dict[str, object]]) -> set[str]:
    """Each body on a connection of its own, all held open until every worker holds one;
    the event_ids accepted."""
    clients = [httpx.Client(base_url=api, timeout=10) for _ in bodies]
    accepted: set[str] = set()
    try:
        for client, body in zip(clients, bodies, strict=True):
            r = client.post("/v1/events", content=orjson.dumps(body),
                            headers={"Authorization": f"Bearer {SOURCE_KEY}"})
            assert r.status_code == 202, r.text
            accepted |= set(r.json()["event_ids"])
        wait_for(lambda: serving_pids(port, pids) == set(pids), timeout=10)
    finally:
        for client in clients:
            client.close()
    return accepted


def test_workers_share_the_port_and_one_of_them_delivers_everything_they_accept(
        tmp_path: Path, emulator: ServerThread, procs: Processes) -> None:
    db = tmp_path / "queue.db"
    port = free_port()
    config = str(write_config(tmp_path / "c.toml", db, port, emulator.url))
    sup = procs.start("serve", "serve", "--config", config, "--workers", "3")
    pids = worker_pids(sup, procs.log("serve"), 3)
    api = f"http://127.0.0.1:{port}"
    wait_http(f"{api}/healthz")

    # 24 connections held open at once: the kernel hands them to every worker's socket.
    # Purchases without a ttclid: enough for the purchase_ttclid alert.
    accepted = post_over_connections(api, port, pids, [
        {"events": [{"event": "Purchase" if k == 0 else "AddToCart", "event_id": f"w{i}-{k}",
                     "user": {"email": f"w{i}.{k}@example.com"}} for k in range(5)]}
        for i in range(24)])

    wait_for(lambda: delivered_ids(emulator) >= accepted, timeout=30, interval=0.1)
    assert delivered_ids(emulator) == accepted and len(accepted) == 120
    assert emu_state(emulator).stats()["duplicates"] == 0
    assert live_delivery_processes(db) == 1  # only the first worker delivers

    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in pids)
    said = procs.log("serve").read_text()
    assert "Traceback" not in said
    assert said.count("stopped by") == 1  # the supervisor's one line; its workers stay quiet
    assert "pixelrelay serve: stopped by SIGTERM, 3 workers finished" in said
    assert said.count("API only") == 2  # the two workers that do not deliver say so

    # Started again on those purchases: the first worker logs the alert, the others do not.
    again = procs.start("again", "serve", "--config", config, "--workers", "3")
    worker_pids(again, procs.log("again"), 3)
    wait_http(f"{api}/healthz")
    wait_for(lambda: "alert purchase_ttclid" in procs.log("again").read_text(), timeout=30)
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=60) == 0
    assert procs.log("again").read_text().count("alert purchase_ttclid") == 1


def test_a_worker_that_dies_stops_the_group_with_an_error(
        tmp_path: Path, emulator: ServerThread, procs: Processes) -> None:
    port = free_port()
    config = str(write_config(tmp_path / "c.toml", tmp_path / "q.db", port, emulator.url))
    sup = procs.start("serve", "serve", "--config", config, "--workers", "2")
    first, second = worker_pids(sup, procs.log("serve"), 2)
    wait_http(f"http://127.0.0.1:{port}/healthz")

    os.kill(second, signal.SIGKILL)
    assert sup.wait(timeout=60) == 1  # an orchestrator sees the crash and restarts the group
    wait_for(lambda: not alive(first), timeout=30)
    assert f"worker {second} exited with code -9; stopping the others" in (
        procs.log("serve").read_text())


def test_workers_stop_when_their_supervisor_is_killed(
        tmp_path: Path, emulator: ServerThread, procs: Processes) -> None:
    port = free_port()
    config = str(write_config(tmp_path / "c.toml", tmp_path / "q.db", port, emulator.url))
    sup = procs.start("serve", "serve", "--config", config, "--workers", "2")
    pids = worker_pids(sup, procs.log("serve"), 2)
    wait_http(f"http://127.0.0.1:{port}/healthz")

    sup.kill()
    sup.wait()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=30)
    with socket.socket() as probe:  # and the port is free again
        probe.bind(("127.0.0.1", port))


def test_workers_refused_without_a_config_a_free_port_or_a_sane_count(
        tmp_path: Path, emulator: ServerThread, procs: Processes) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = str(write_config(tmp_path / "c.toml", tmp_path / "q.db", port, emulator.url))
        busy = procs.start("busy", "serve", "--config", config, "--workers", "2")
        assert busy.wait(timeout=60) == 2
    assert f"127.0.0.1:{port}: cannot listen" in procs.log("busy").read_text()
    assert not (tmp_path / "q.db").exists()  # nothing started: not even the migration

    sandbox = subprocess.run(
        [sys.executable, "-m", "pixelrelay.cli", "serve", "--workers", "2", "--port",
         str(free_port())], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PIXELRELAY_CONFIG"})
    assert sandbox.returncode == 2
    assert "--workers needs a config" in sandbox.stderr
    zero = procs.start("zero", "serve", "--config", config, "--workers", "0")
    assert zero.wait(timeout=60) == 2
    assert "--workers must be between 1 and 64" in procs.log("zero").read_text()


def test_workers_on_postgresql_accept_and_deliver_once(
        tmp_path: Path, emulator: ServerThread, procs: Processes) -> None:
    port = free_port()
    path = write_config(tmp_path / "c.toml", tmp_path / "unused.db", port, emulator.url)
    with postgres_url() as url:
        path.write_text(re.sub(r'url = "sqlite:///[^"]*"', f'url = "{url}"', path.read_text()))
        sup = procs.start("serve", "serve", "--config", str(path), "--workers", "2")
        pids = worker_pids(sup, procs.log("serve"), 2)
        api = f"http://127.0.0.1:{port}"
        wait_http(f"{api}/healthz")
        accepted = post_over_connections(api, port, pids, [
            {"event": "ViewContent", "event_id": f"p{i}", "user": {"external_id": f"u{i}"}}
            for i in range(16)])
        wait_for(lambda: delivered_ids(emulator) >= accepted, timeout=30, interval=0.1)
        assert delivered_ids(emulator) == accepted
        assert emu_state(emulator).stats()["duplicates"] == 0
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=60) == 0
        assert not any(alive(pid) for pid in pids)
