"""replay, import, report gap and check --send-test as subprocesses on real SQLite files, with a
gateway and the emulator on loopback."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import load_settings
from pixelrelay.ops.send_test import TEST_EVENT_ID
from tests.conftest import ACCESS_TOKEN, PIXEL, SOURCE_KEY, emu_state
from tests.support import ServerThread, wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ops"
AUTH = {"Authorization": f"Bearer {SOURCE_KEY}", "Content-Type": "application/json"}


def config(path: Path, db: Path, api_url: str, *, dest: str = "", name: str = "tiktok",
           extra: str = "", retry_base_s: float = 0.05) -> Path:
    path.write_text(f"""
[storage]
url = "sqlite:///{db}"
[[sources]]
name = "backend"
kind = "server"
key = "{SOURCE_KEY}"
[[destinations]]
name = "{name}"
pixel_code = "{PIXEL}"
access_token = "${{OPS_TEST_TOKEN}}"
api_url = "{api_url}"
{dest}
{extra}
[delivery]
flush_interval_s = 0.02
retry_base_s = {retry_base_s}
retry_cap_s = {retry_base_s * 2}
max_attempts = 50
""")
    return path


ENV = {**os.environ, "OPS_TEST_TOKEN": ACCESS_TOKEN, "COLUMNS": "200"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pixelrelay.cli", *args], capture_output=True,
                          text=True, timeout=60, env=ENV)


@pytest.fixture
def gateway_for(emulator: ServerThread) -> Iterator[Any]:
    servers: list[ServerThread] = []

    def start(cfg: Path) -> ServerThread:
        os.environ["OPS_TEST_TOKEN"] = ACCESS_TOKEN
        server = ServerThread(create_app(load_settings(cfg)))
        servers.append(server.__enter__())
        return server

    yield start
    for s in servers:
        s.__exit__()


def post(gw: ServerThread, *events: dict[str, Any]) -> None:
    r = httpx.post(f"{gw.url}/v1/events", content=orjson.dumps({"events": list(events)}),
                   headers=AUTH)
    assert r.status_code == 202 and not r.json()["rejected"], r.text


def states(db: Path) -> dict[str, tuple[str, str, int]]:
    """event_id -> (state, dest_event, attempts) of every delivery."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT event_id, state, dest_event, attempts FROM deliveries")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


def delivered_ids(emulator: ServerThread) -> dict[str, str]:
    return {e["event_id"]: e["event"] for e in emu_state(emulator).events}


def test_replay_after_the_cause_is_fixed(tmp_path: Path, emulator: ServerThread,
                                         gateway_for: Any) -> None:
    db = tmp_path / "gw.db"
    # The gateway runs with a wrong mapping and a 30-day window; the fixed config has neither.
    serving = config(tmp_path / "serve.toml", db, emulator.url, dest="max_age_days = 30",
                     extra='[destinations.event_map]\nLead = "BadLead"')
    fixed = config(tmp_path / "fixed.toml", db, emulator.url)
    gw = gateway_for(serving)
    emu = emu_state(emulator)
    emu.faults.update({"reject_event": "AddToCart"})
    now = int(time.time())
    post(gw, *({"event": "AddToCart", "event_id": f"cart-{i}"} for i in range(3)),
         {"event": "AddToCart", "event_id": "cart-old", "timestamp": now - 10 * 86400})
    wait_for(lambda: sum(s[0] == "dead" for s in states(db).values()) == 4)
    emu.faults.update({"reject_event": "BadLead"})
    post(gw, {"event": "Lead", "event_id": "lead-1"}, {"event": "ViewContent", "event_id": "v-1"})
    wait_for(lambda: states(db).get("lead-1", ("",))[0] == "dead"
             and states(db)["v-1"][0] == "delivered")
    emu.faults.update({"reject_event": None})
    before = states(db)

    dry = cli("replay", "--config", str(fixed), "--destination", "tiktok", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "5 matched, would re-queue 4, skipped 1" in dry.stdout
    assert "1 event(s) skipped: older than" in dry.stdout
    assert "nothing was changed" in dry.stdout
    time.sleep(1.5)
    assert states(db) == before and set(delivered_ids(emulator)) == {"v-1"}

    run = cli("replay", "--config", str(fixed), "--destination", "tiktok")
    assert run.returncode == 0, run.stderr
    assert "5 matched, re-queued 4, skipped 1" in run.stdout
    assert "1 event(s) skipped: older than" in run.stdout
    wait_for(lambda: len(delivered_ids(emulator)) == 5, timeout=15)
    # The emulator answers before the gateway records the outcome: wait for that too.
    wait_for(lambda: all(states(db)[e][0] == "delivered"
                         for e in ("cart-0", "cart-1", "cart-2", "lead-1")), timeout=15)
    # Same event ids; the Lead went out under the fixed mapping's name.
    assert delivered_ids(emulator) == {"cart-0": "AddToCart", "cart-1": "AddToCart",
                                       "cart-2": "AddToCart", "lead-1": "SubmitForm",
                                       "v-1": "ViewContent"}
    after = states(db)
    assert after["cart-old"] == before["cart-old"]
    assert after["lead-1"] == ("delivered", "SubmitForm", 1)  # attempts were reset
    assert after["cart-0"] == ("delivered", "AddToCart", 1)

    again = cli("replay", "--config", str(fixed), "--destination", "tiktok")
    assert "1 matched, re-queued 0, skipped 1" in again.stdout  # only the old one is dead
    assert emu.stats()["duplicates"] == 0


def test_import_jsonl_and_csv_report_bad_lines(tmp_path: Path, emulator: ServerThread) -> None:
    db = tmp_path / "imp.db"
    cfg = config(tmp_path / "c.toml", db, emulator.url)
    rejects = tmp_path / "rejects.csv"
    r = cli("import", str(FIXTURES / "events.jsonl"), "--config", str(cfg),
            "--rejects", str(rejects))
    assert r.returncode == 1, r.stderr  # something was rejected
    with rejects.open() as f:
        got = [(row["line"], row["field"]) for row in csv.DictReader(f)]
    assert got == [("4", "event"), ("5", "line"), ("6", "properties.currency"),
                   ("7", "timestamp")]
    assert "must not be empty" in r.stdout and "not valid JSON" in r.stdout
    assert "7 events read: 3 accepted, 0 duplicates, 4 rejected" in r.stdout
    assert set(states(db)) == {"ord_5001_complete_payment", "imp-cart-1", "imp-reg-1"}

    again = cli("import", str(FIXTURES / "events.jsonl"), "--config", str(cfg))
    assert "7 events read: 0 accepted, 3 duplicates, 4 rejected" in again.stdout

    r = cli("import", str(FIXTURES / "events.csv"), "--config", str(cfg),
            "--rejects", str(rejects))
    assert r.returncode == 1, r.stderr
    with rejects.open() as f:
        got = [(row["line"], row["field"]) for row in csv.DictReader(f)]
    assert got == [("4", "properties.value"), ("5", "source"), ("6", "timestamp")]
    assert "6 events read: 3 accepted, 0 duplicates, 3 rejected" in r.stdout
    with sqlite3.connect(db) as conn:
        bodies = {r[0]: orjson.loads(r[1]) for r in conn.execute(
            "SELECT event_id, body FROM events WHERE event_id LIKE 'ord_600%'")}
    assert bodies["ord_6001_complete_payment"]["source"] == "web"  # the API's default
    assert bodies["ord_6002_complete_payment"]["source"] == "offline"
    first = bodies["ord_6001_complete_payment"]
    assert first["properties"]["content_ids"] == ["SKU-1", "SKU-2"]
    assert first["properties"]["coupon"] == "SPRING"
    assert len(first["user"]["email"][0]) == 64  # hashed, like the API does

    bad = tmp_path / "bad.csv"
    bad.write_text("event,emial\nPurchase,a@b.c\n")
    r = cli("import", str(bad), "--config", str(cfg))
    assert r.returncode == 2 and "did you mean 'email'?" in r.stderr


def test_gap_report_classifies_each_order(tmp_path: Path, emulator: ServerThread,
                                          gateway_for: Any) -> None:
    db = tmp_path / "gap.db"
    cfg = config(tmp_path / "c.toml", db, emulator.url, retry_base_s=1.0,
                 dest='exclude_order_sources = ["tiktok_shop"]')
    gw = gateway_for(cfg)
    emu = emu_state(emulator)

    def purchase(order: str, **extra: Any) -> dict[str, Any]:
        return {"event": "Purchase", "properties": {"order_id": order, "value": 10.0,
                                                    "currency": "EUR"}, **extra}

    emu.faults.update({"reject_event": "CompletePayment"})
    post(gw, purchase("7005"))
    wait_for(lambda: states(db).get("ord_7005_complete_payment", ("",))[0] == "dead")
    emu.faults.update({"reject_event": None})
    bad_value = purchase("7002")
    bad_value["properties"]["value"] = "12,50"  # refused at ingest, with the reason kept
    refused = httpx.post(f"{gw.url}/v1/events", json=bad_value,
                         headers={"Authorization": f"Bearer {SOURCE_KEY}"}).json()
    assert refused["event_ids"] == ["ord_7002_complete_payment"] and refused["rejected"]
    post(gw, purchase("7001"), purchase("7099"),
         purchase("7003", consent={"marketing": "denied"}),
         purchase("7004", order_source="tiktok_shop"))
    wait_for(lambda: {"ord_7001_complete_payment", "ord_7099_complete_payment"}
             <= set(delivered_ids(emulator)))
    emu.faults.update({"code_50000_rate": 1.0})
    post(gw, purchase("7006"))
    wait_for(lambda: states(db).get("ord_7006_complete_payment", ("", "", 0))[2] >= 1)

    out = tmp_path / "gap.csv"
    r = cli("report", "gap", "--orders", str(FIXTURES / "orders.csv"), "--config", str(cfg),
            "--out", str(out))
    assert r.returncode == 1, r.stderr  # orders are missing
    assert "line 8 order_id: is empty" in r.stdout
    with out.open() as f:
        rows = {row["order_id"]: row for row in csv.DictReader(f)}
    assert {k: (v["status"], v["category"]) for k, v in rows.items()} == {
        "7001": ("matched", "delivered"), "7002": ("missing", "rejected_ingest"),
        "7003": ("missing", "suppressed"), "7004": ("missing", "filtered"),
        "7005": ("missing", "rejected"), "7006": ("missing", "pending"),
        "7099": ("extra", "delivered")}
    assert "rejected by fault" in rows["7005"]["reason"]  # TikTok's own message
    assert rows["7002"]["reason"] == (
        "rejected at ingest: properties.value: must be a non-negative number without currency "
        "symbol or thousands separator, such as 129.95")
    assert "consent: marketing denied" in rows["7003"]["reason"]
    assert "value differs (order 10.00, event 10.00)" not in rows["7001"]["reason"]
    assert rows["7001"]["event_id"] == "ord_7001_complete_payment"

    r = cli("report", "gap", "--orders", str(FIXTURES / "orders.csv"), "--config", str(cfg),
            "--out", str(out), "--since", "2026-01-10T12:00:00Z",
            "--until", "2026-01-10T14:00:00Z")
    with out.open() as f:
        assert sorted(row["order_id"] for row in csv.DictReader(f)) == ["7003", "7004"]


def test_check_send_test_goes_to_test_events_only(tmp_path: Path,
                                                  emulator: ServerThread) -> None:
    cfg = config(tmp_path / "c.toml", tmp_path / "x.db", emulator.url, name="tiktok-test",
                 dest='test_event_code = "TEST42"', extra=f"""
[[destinations]]
name = "tiktok-prod"
pixel_code = "{PIXEL}"
access_token = "${{OPS_TEST_TOKEN}}"
api_url = "{emulator.url}"
""")
    r = cli("check", "--config", str(cfg), "--send-test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tiktok-test: code=0 message='OK' request_id=" in r.stdout
    assert "tiktok-prod: refused: no test_event_code" in r.stdout
    assert ACCESS_TOKEN not in r.stdout
    events = emu_state(emulator).events
    assert [(e["event_id"], e["event"], e["_test_event_code"]) for e in events] == [
        (TEST_EVENT_ID, "ViewContent", "TEST42")]

    r = cli("check", "--config", str(cfg), "--send-test", "--destination", "tiktok-prod")
    assert r.returncode == 1 and "refused" in r.stdout
    assert emu_state(emulator).stats()["requests"] == 1
