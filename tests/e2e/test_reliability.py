"""The reliability suite (`-m reliability`; part of the default run): two API and two delivery
processes on one PostgreSQL, TikTok (the emulator, its own process) failing 30 % of requests
with 5xx / 50000 and 15 % with 40100 and answering slowly, and kill -9 again and again: an
API process mid-request, the delivery processes with a claim not yet sent, with a request in
flight, and between the requests of a batch split around an event TikTok refuses.

Proved at the end: every event that got a 2xx is delivered or dead with TikTok's reason; what
TikTok received is only our event ids; and TikTok's duplicate count equals the events of the
requests TikTok accepted whose outcome a kill kept us from writing (found by request_id in
our delivery log): the only re-sends are of batches that were in flight, under the same id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from tests.conftest import postgres_url
from tests.e2e.test_kill9 import spawn, wait_http
from tests.support import free_port, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
TOKEN, PIXEL, KEY, ADMIN = "rel-token-0001", "RELIABLEPIXEL01", "rel-key-0001", "rel-admin-01"
ENV = {"REL_TOKEN": TOKEN, "REL_KEY": KEY, "REL_ADMIN": ADMIN}
CYCLES = 24  # kills: a third of an API process, the rest of the delivery processes
LATENCY_MS = 120  # TikTok's answer time, but for the kills between requests
# Rows claimed and not yet sent, or answered and the outcome not yet written: TikTok idle.
BETWEEN = "between claim and outcome, no request out"
REFUSED = "Search"  # TikTok answers 40002 for a batch holding one: batches split around it


def config(path: Path, url: str, emulator: str, port: int) -> Path:
    path.write_text(f"""
[server]
port = {port}
admin_token = "${{REL_ADMIN}}"
[storage]
url = "{url}"
[[sources]]
name = "backend"
key = "${{REL_KEY}}"
[[destinations]]
name = "tiktok"
pixel_code = "{PIXEL}"
access_token = "${{REL_TOKEN}}"
api_url = "{emulator}"
batch_size = 40
[delivery]
flush_interval_s = 0.05
retry_base_s = 0.05
retry_cap_s = 0.4
lease_s = 1.5
""")
    return path


@dataclass
class Process:
    args: list[str]
    log: Path
    health: str | None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(self.args, self.log, ENV)
        if self.health:
            wait_http(self.health)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Load:
    """Clients posting batches to both API processes; keeps the ids of every 2xx."""

    apis: list[str]
    acked: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # acked ids TikTok will refuse
    failed_requests: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, client_no: int) -> None:
        n = 0
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                n += 1
                ids = [f"c{client_no}-{n}-{j}" for j in range(8)]
                events = [{"event": REFUSED if j == 7 and n % 10 == 0 else "AddToCart",
                           "event_id": eid, "user": {"email": f"{eid}@example.com"}}
                          for j, eid in enumerate(ids)]
                api = self.apis[n % len(self.apis)]
                try:
                    r = http.post(f"{api}/v1/events", content=orjson.dumps({"events": events}),
                                  headers={"Authorization": f"Bearer {KEY}"})
                except httpx.HTTPError:
                    self.failed_requests += 1  # killed mid-request: no 2xx, no promise
                    time.sleep(0.05)
                    continue
                if r.status_code == 202 and r.json()["accepted"] == len(ids):
                    self.acked.update(ids)
                    self.refused.update(e["event_id"] for e in events
                                        if e["event"] == REFUSED)
                else:
                    self.failed_requests += 1
                time.sleep(0.04)


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_url() as url:
        yield url


def test_kill9_of_any_process_loses_nothing_and_resends_only_what_was_in_flight(
        tmp_path: Path, database: str) -> None:
    emulator = Process(["emulator", "--port", str(free_port()), "--token", TOKEN,
                        "--pixel", PIXEL], tmp_path / "emulator.log", None)
    emu = f"http://127.0.0.1:{emulator.args[2]}"
    emulator.health = f"{emu}/stats"
    ports = [free_port() for _ in range(4)]
    cfg = config(tmp_path / "pixelrelay.toml", database, emu, ports[0])
    apis = [Process(["serve", "--no-delivery", "--config", str(cfg), "--port", str(p)],
                    tmp_path / f"api{i}.log", f"http://127.0.0.1:{p}/healthz")
            for i, p in enumerate(ports[:2])]
    delivery = [Process(["deliver", "--config", str(cfg), "--port", str(p)],
                        tmp_path / f"deliver{i}.log", f"http://127.0.0.1:{p}/healthz")
                for i, p in enumerate(ports[2:])]
    everyone = [emulator, *apis, *delivery]
    load = Load([f"http://127.0.0.1:{p}" for p in ports[:2]])
    clients = [threading.Thread(target=load.run, args=(i,), daemon=True) for i in range(3)]
    kills: dict[str, int] = {"api mid-request": 0, BETWEEN: 0, "request in flight": 0,
                             "other": 0}
    try:
        emulator.start()
        httpx.post(f"{emu}/faults", json={"http_5xx_rate": 0.15, "code_50000_rate": 0.15,
                                          "code_40100_rate": 0.15, "latency_ms": LATENCY_MS,
                                          "reject_event": REFUSED})
        assert subprocess.run([*spawn_args("migrate", "--config", str(cfg))], env=full_env(),
                              capture_output=True).returncode == 0
        for p in [*apis, *delivery]:
            p.start()
        for c in clients:
            c.start()
        admin = {"X-Admin-Token": ADMIN}
        api_url = f"http://127.0.0.1:{ports[0]}"

        def in_flight_rows() -> int:
            return unfinished(database, "in_flight")

        def emulator_busy() -> bool:
            return bool(httpx.get(f"{emu}/stats", timeout=5).json()["in_flight"] > 0)

        def short() -> bool:  # a point of the send cycle not yet hit often enough
            return min(kills["request in flight"], kills[BETWEEN]) < 4

        cycle = -1
        while (cycle := cycle + 1) < CYCLES or (short() and cycle < 2 * CYCLES):
            time.sleep(0.3)
            if cycle % 3 == 0:  # an API process while the clients are posting to it
                victim = apis[(cycle // 3) % 2]
                victim.kill9()
                kills["api mid-request"] += 1
                victim.start()
                continue
            # Both delivery processes at a chosen point of the send cycle, then both back.
            want_in_flight = cycle % 3 == 1
            if not want_in_flight:  # TikTok answering at once leaves it idle between requests
                httpx.post(f"{emu}/faults", json={"latency_ms": 0})
            hit = poll(lambda w=want_in_flight: emulator_busy() == w and in_flight_rows() > 0)
            for p in delivery:
                p.kill9()
            httpx.post(f"{emu}/faults", json={"latency_ms": LATENCY_MS})
            if hit:
                kills["request in flight" if want_in_flight else BETWEEN] += 1
            else:
                kills["other"] += 1
            for p in delivery:
                p.start()

        load.stop.set()
        for c in clients:
            c.join(timeout=10)
        assert all(p.proc is not None and p.proc.poll() is None for p in everyone)
        assert kills["request in flight"] >= 4 and kills[BETWEEN] >= 4, kills
        httpx.post(f"{emu}/faults", json={"http_5xx_rate": 0, "code_50000_rate": 0,
                                          "code_40100_rate": 0, "latency_ms": 0})

        wait_for(lambda: unfinished(database, "pending", "in_flight") == 0, timeout=120,
                 interval=0.5)
        # Any API process sees the whole system: nothing pending, the refused ones dead.
        totals = httpx.get(f"{api_url}/v1/diagnostics", params={"window": "1h"},
                           headers=admin, timeout=60).json()["totals"]
        assert totals["pending"] == 0 and totals["delivered"] >= len(load.acked - load.refused)
        check(load, emu, database, kills)
    finally:
        load.stop.set()
        for p in everyone:
            p.stop()


def check(load: Load, emu: str, database: str, kills: dict[str, int]) -> None:
    received = httpx.get(f"{emu}/events", timeout=30).json()
    received_ids = [e["event_id"] for e in received]
    assert len(received_ids) == len(set(received_ids)), "an event was accepted twice"
    with psycopg.connect(database) as conn:
        states = dict(conn.execute(
            "SELECT event_id, state || ':' || coalesce(dead_reason, '') FROM deliveries"
        ).fetchall())
        logged = {r[0] for r in conn.execute(
            "SELECT request_id FROM attempts WHERE request_id IS NOT NULL").fetchall()}
    posted_prefixes = tuple(f"c{i}-" for i in range(3))
    assert all(eid.startswith(posted_prefixes) for eid in received_ids), "a foreign event_id"
    delivered = set(received_ids)
    must_deliver = load.acked - load.refused
    assert must_deliver <= delivered, f"lost: {sorted(must_deliver - delivered)[:10]}"
    for eid in load.refused & load.acked:
        assert states[eid].startswith("dead:rejected"), (eid, states[eid])
    requests = httpx.get(f"{emu}/requests", timeout=30).json()
    lost = [r for r in requests if r["code"] == 0 and r["request_id"] not in logged]
    duplicates = httpx.get(f"{emu}/stats", timeout=5).json()["duplicates"]
    # Each event of a request TikTok accepted but we never recorded is sent again once.
    assert duplicates == sum(r["n_events"] for r in lost), (duplicates, len(lost))
    assert lost, "no kill landed with a request in flight: nothing was proved about re-sends"
    print(f"\nreliability: {sum(kills.values())} kills {kills}; {len(load.acked)} events "
          f"acknowledged ({load.failed_requests} requests without a 2xx); {len(requests)} "
          f"requests to TikTok, {len(lost)} accepted but unrecorded -> {duplicates} re-sent "
          "events, all absorbed as duplicates")


def unfinished(database: str, *states: str) -> int:
    """Deliveries in these states, read from the database (cheap enough to poll)."""
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM deliveries WHERE state = ANY(%s)",
                           (list(states),)).fetchone()
    return int(row[0]) if row else 0


def poll(condition: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (httpx.HTTPError, psycopg.Error, KeyError, ValueError):
            pass
        time.sleep(0.005)
    return False


def spawn_args(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "pixelrelay.cli", *args]


def full_env() -> dict[str, str]:
    return {**os.environ, **ENV}
