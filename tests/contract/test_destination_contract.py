"""The destination contract (issue 26.5), run over every registered destination type: a gateway
delivers to the type's own emulator over real HTTP on loopback, through the real delivery
worker, and for each type
- no request exceeds the platform's batch limit (and a backlog fills requests up to it);
- the four outcome kinds come from real answers of its emulator under its fault options:
  delivered; retry (a 5xx, a throttling code) and then delivered; one refused event isolated
  by bisection and dead with the platform's message while its batch-mates are delivered; a
  refused token pauses the destination and loses nothing;
- its user hashes equal the platform's published vectors;
- a consent-denied or filtered event never reaches it.

A type joins by being registered (destinations.REGISTRY, its emulator in emulator/sandbox.py)
and by a row of FACTS below: what only its emulator and its docs know.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pixelrelay.app import create_app
from pixelrelay.destinations import REGISTRY, Plugin
from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.emulator.sandbox import EMULATORS
from pixelrelay.sources.api import MAX_EVENTS
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, make_settings
from tests.support import ServerThread, free_port, wait_for

SERVER = {"Authorization": f"Bearer {SOURCE_KEY}"}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
UA = "Mozilla/5.0 (X11; Linux x86_64) pixelrelay-contract"


def one_hash(hex_digest: str) -> list[str]:
    return [hex_digest]  # both platforms take hashed keys as arrays


@dataclass(frozen=True)
class Facts:
    """What the suite needs to know of one type beyond its Plugin."""

    label: str  # the platform's name as people write it
    # Faults that fail every request transiently until lifted (label -> emulator fault).
    transient: dict[str, dict[str, Any]]
    pause: Callable[[str], dict[str, Any]]  # the destination's token -> fault refusing it
    pause_code: int  # the platform's code for that refusal
    reject: Callable[[str], dict[str, Any]]  # an event name as sent -> fault refusing it
    reject_code: int  # the platform's code for a refused event
    answer_id: str  # the emulator's request-log key of the id its answer carries
    # The platform's published hash vectors for VECTOR_USER: path in a received event ->
    # what it must be (tiktok-events-api.md §5, meta-capi.md §8).
    vectors: dict[tuple[str, ...], Any]


# One input for every type: TikTok's published email and external_id examples, Meta's
# published phone, name and address examples.
VECTOR_USER = {"email": " ALICE_abc@gmail.com ", "phone": "+1 (650) 555-1212",
               "external_id": "user_123", "first_name": "Mary", "city": "Menlo Park",
               "state": "CA", "zip_code": "94035-1234", "country": "US"}
ALICE = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
USER_123 = "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b"

FACTS: dict[str, Facts] = {
    "tiktok": Facts(
        label="TikTok",
        transient={"http_503": {"http_5xx_rate": 1.0}, "code_40100": {"code_40100_rate": 1.0},
                   "code_50000": {"code_50000_rate": 1.0}},
        pause=lambda token: {"setup_error_code": 40105}, pause_code=40105,
        reject=lambda name: {"reject_event": name}, reject_code=40002,
        answer_id="request_id",
        vectors={
            ("user", "email"): one_hash(ALICE),
            # E.164 with the +: meta-capi.md §8 lists it as the form TikTok takes.
            ("user", "phone"): one_hash(
                "1e231c66011e7a2d867a9cfae267a6aff103cf4913640b6e71a99850fc0ffbc8"),
            ("user", "external_id"): one_hash(USER_123),
        }),
    "meta": Facts(
        label="Meta",
        transient={"http_503": {"http_5xx_rate": 1.0}, "code_17": {"rate_limit_rate": 1.0},
                   "code_2": {"transient_rate": 1.0}},
        pause=lambda token: {"revoked_tokens": [token]}, pause_code=190,
        reject=lambda name: {"reject_event": name}, reject_code=100,
        answer_id="fbtrace_id",
        vectors={
            ("user_data", "em"): one_hash(ALICE),
            ("user_data", "ph"): one_hash(
                "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"),
            ("user_data", "fn"): one_hash(
                "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
            ("user_data", "ct"): one_hash(
                "0007a3d64c01e23d5075203c5977c14e4f7e01a3fc570686fcc50b5e1dd42685"),
            ("user_data", "st"): one_hash(
                "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
            ("user_data", "zp"): one_hash(
                "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"),
            ("user_data", "country"): one_hash(
                "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
            ("user_data", "external_id"): one_hash(USER_123),
        }),
}
TYPES = sorted(REGISTRY)


# --- a gateway and the type's emulator ---------------------------------------------------------


@dataclass
class Rig:
    """One destination of the type under test, its gateway and its emulator."""

    plugin: Plugin
    facts: Facts
    dest: DestinationSettings
    gw: str  # the gateway's base URL
    emu: str  # the emulator's control base URL (its mount point)
    default_faults: dict[str, Any]

    # The emulator, through its control endpoints (the same for every type).
    def faults(self, changes: dict[str, Any]) -> None:
        r = httpx.post(f"{self.emu}/faults", json=changes)
        assert r.status_code == 200, r.text

    def lift(self, changes: dict[str, Any]) -> None:
        self.faults({k: self.default_faults[k] for k in changes})

    def requests(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = httpx.get(f"{self.emu}/requests").json()
        return out

    def received(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = httpx.get(f"{self.emu}/events").json()
        return out

    def received_ids(self) -> list[str]:
        return [e["event_id"] for e in self.received()]

    def received_count(self) -> int:
        return int(httpx.get(f"{self.emu}/stats").json()["events"])

    # The gateway.
    def post(self, events: list[dict[str, Any]]) -> None:
        for i in range(0, len(events), MAX_EVENTS):
            chunk = events[i:i + MAX_EVENTS]
            r = httpx.post(f"{self.gw}/v1/events", headers=SERVER, json={"events": chunk})
            assert r.status_code == 202 and r.json()["accepted"] == len(chunk), r.text

    def delivery(self, event_id: str) -> dict[str, Any]:
        rows = httpx.get(f"{self.gw}/v1/deliveries", params={"event_id": event_id},
                         headers=ADMIN).json()["deliveries"]
        row: dict[str, Any] = next(d for d in rows if d["destination"] == self.dest.name)
        return row

    def state(self, event_id: str) -> str:
        return str(self.delivery(event_id)["state"])

    def outcomes(self, event_id: str) -> list[str]:
        """The outcome the gateway read from each answer to a request carrying the event."""
        trace = httpx.get(f"{self.gw}/v1/events/{event_id}/trace", headers=ADMIN).json()
        mine = next(d for d in trace["deliveries"] if d["destination"] == self.dest.name)
        return [a["outcome"] for a in mine["log"]]

    def diagnostics(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = httpx.get(f"{self.gw}/v1/diagnostics", params={"window": "1h"},
                         headers=ADMIN).json()
        mine = next(d for d in body["destinations"] if d["name"] == self.dest.name)
        return mine, body["alerts"]


@contextlib.contextmanager
def rig(type_name: str, tmp_path: Path, **changes: Any) -> Iterator[Rig]:
    """The type's emulator (as `serve --sandbox` mounts it) and a gateway whose one
    destination is the type's sandbox destination pointed at it, with `changes` applied."""
    plugin, facts = REGISTRY[type_name], FACTS[type_name]
    mount, make_emulator = EMULATORS[type_name]
    port = free_port()  # the emulator's, before the destination that points at it
    dest = dataclasses.replace(plugin.sandbox(f"http://127.0.0.1:{port}"), name=type_name,
                               **changes)
    inner = make_emulator([dest.access_token.reveal()], plugin.emulator_ids(dest))
    emu_thread = ServerThread(Starlette(routes=[Mount(mount, app=inner)]), port=port)
    base = make_settings(tmp_path / f"{type_name}.db", "http://127.0.0.1:9")
    settings = dataclasses.replace(base, destinations=(dest,))
    with emu_thread, ServerThread(create_app(settings)) as gw:
        emu = f"{emu_thread.url}{mount}"
        yield Rig(plugin, facts, dest, gw.url, emu, httpx.get(f"{emu}/faults").json())


def event(event_id: str, name: str = "ViewContent", **extra: Any) -> dict[str, Any]:
    """A web event every platform takes as it is (page, agent, value and contents)."""
    return {"event": name, "event_id": event_id, "timestamp": int(time.time()),
            "user": {"email": f"{event_id}@example.com", "ip": "203.0.113.9",
                     "user_agent": UA},
            "page": {"url": f"https://shop.example/p/{event_id}"},
            "properties": {"value": 7.5, "currency": "EUR",
                           "contents": [{"content_id": "SKU-1", "quantity": 1, "price": 7.5}]},
            **extra}


def wait_paused(r: Rig, queued: int) -> dict[str, Any]:
    def paused() -> bool:
        d, _ = r.diagnostics()
        return bool(d["state"] == "paused" and d["in_flight"] == 0
                    and d["queue_depth"] == queued)
    wait_for(paused, timeout=20)
    return r.diagnostics()[0]


def resume(r: Rig) -> None:
    answer = httpx.post(f"{r.gw}/v1/destinations/{r.dest.name}/resume", headers=ADMIN)
    assert answer.status_code == 200, answer.text


# --- the suite ---------------------------------------------------------------------------------


def test_every_registered_type_has_its_emulator_and_its_facts() -> None:
    assert set(REGISTRY) <= set(EMULATORS), "register the type's emulator in emulator/sandbox.py"
    assert set(REGISTRY) <= set(FACTS), "add the type's row to FACTS in this module"


@pytest.mark.parametrize("type_name", TYPES)
def test_no_request_exceeds_the_platforms_batch_limit(type_name: str, tmp_path: Path) -> None:
    with rig(type_name, tmp_path, batch_size=REGISTRY[type_name].max_batch_size) as r:
        limit = r.plugin.max_batch_size
        # Paused, the queue fills past the limit before anything is sent; then it drains.
        r.faults(r.facts.pause(r.dest.access_token.reveal()))
        r.post([event("first")])
        wait_paused(r, 1)
        r.post([event(f"b{i}") for i in range(limit + 5)])
        r.lift(r.facts.pause(r.dest.access_token.reveal()))
        resume(r)
        wait_for(lambda: r.received_count() == limit + 6, timeout=40)
        sizes = [q["n_events"] for q in r.requests()]
        assert max(sizes) == limit  # a backlog fills a request up to the limit, never past
        assert sorted(r.received_ids()) == sorted(["first", *(f"b{i}" for i in range(limit + 5))])


@pytest.mark.parametrize("type_name", TYPES)
def test_delivered_from_a_real_answer(type_name: str, tmp_path: Path) -> None:
    with rig(type_name, tmp_path) as r:
        r.post([event("ok1")])
        wait_for(lambda: r.state("ok1") == "delivered")
        assert r.received_ids() == ["ok1"]
        assert r.outcomes("ok1") == ["delivered"]
        # The answer was read: its id is the one the emulator gave.
        (answered,) = r.requests()
        assert r.delivery("ok1")["last_request_id"] == answered[r.facts.answer_id]


@pytest.mark.parametrize(("type_name", "fault"), [
    (t, f) for t in TYPES if t in FACTS for f in FACTS[t].transient])
def test_a_transient_answer_is_retried_then_delivered(type_name: str, fault: str,
                                                      tmp_path: Path) -> None:
    with rig(type_name, tmp_path) as r:
        changes = r.facts.transient[fault]
        r.faults(changes)
        r.post([event("t1"), event("t2")])
        wait_for(lambda: len(r.requests()) >= 3)  # failed and tried again, twice
        assert r.received_count() == 0
        assert {r.state("t1"), r.state("t2")} <= {"pending", "in_flight"}
        r.lift(changes)
        wait_for(lambda: r.state("t1") == r.state("t2") == "delivered")
        for event_id in ("t1", "t2"):
            kinds = r.outcomes(event_id)
            assert kinds[-1] == "delivered" and set(kinds[:-1]) == {"retry"}
            assert len(kinds) >= 3
        assert sorted(r.received_ids()) == ["t1", "t2"]  # each once


@pytest.mark.parametrize("type_name", TYPES)
def test_a_refused_event_is_isolated_by_bisection_and_dead_with_the_platforms_message(
        type_name: str, tmp_path: Path) -> None:
    with rig(type_name, tmp_path) as r:
        refused_name = r.plugin.names({})("Search")
        r.faults(r.facts.reject(refused_name))
        good = [f"g{i}" for i in range(5)]
        batch = [event(i) for i in good]
        batch.insert(3, event("poison", name="Search"))
        r.post(batch)  # one ingest, one claim: the six share a request
        wait_for(lambda: r.state("poison") == "dead", timeout=20)
        wait_for(lambda: all(r.state(i) == "delivered" for i in good))
        assert sorted(r.received_ids()) == good  # each once, the refused one never

        refusals = [q for q in r.requests() if q["code"] == r.facts.reject_code]
        assert refusals[0]["n_events"] == 6  # refused with all its batch-mates ...
        assert refusals[-1]["n_events"] == 1  # ... and bisected down to itself
        dead = r.delivery("poison")
        assert dead["last_code"] == r.facts.reject_code
        assert refusals[-1]["message"] in dead["last_message"]  # the platform's own words
        assert r.outcomes("poison")[-1] == "permanent"
        assert "retry" not in r.outcomes("poison")  # a refusal is no transient failure


@pytest.mark.parametrize("type_name", TYPES)
def test_a_refused_token_pauses_the_destination_and_loses_nothing(
        type_name: str, tmp_path: Path) -> None:
    with rig(type_name, tmp_path) as r:
        pause = r.facts.pause(r.dest.access_token.reveal())
        r.faults(pause)
        ids = ["p1", "p2", "p3"]
        r.post([event(i) for i in ids])
        paused = wait_paused(r, 3)
        assert str(paused["paused_reason"]).startswith(str(r.facts.pause_code))
        assert r.received_count() == 0
        assert all(r.state(i) == "pending" for i in ids)
        # One request, read as a setup problem; paused, no retry spends the events' attempts.
        assert all(r.outcomes(i) == ["setup"] for i in ids)

        r.lift(pause)  # the token is good again
        resume(r)
        wait_for(lambda: all(r.state(i) == "delivered" for i in ids))
        assert sorted(r.received_ids()) == ids
        assert r.diagnostics()[0]["state"] == "active"


@pytest.mark.parametrize("type_name", TYPES)
def test_a_pause_alert_names_the_destinations_own_platform(type_name: str,
                                                            tmp_path: Path) -> None:
    with rig(type_name, tmp_path) as r:
        r.faults(r.facts.pause(r.dest.access_token.reveal()))
        r.post([event("a1")])
        wait_paused(r, 1)
        _, alerts = r.diagnostics()
        alert = next(a for a in alerts if a["key"] == f"paused:{r.dest.name}")
        text = " ".join(str(alert[k]) for k in ("title", "detail", "check"))
        others = {FACTS[t].label for t in FACTS} - {r.facts.label}
        assert not [o for o in others if o in text], text


@pytest.mark.parametrize("type_name", TYPES)
def test_hashes_match_the_platforms_published_vectors(type_name: str, tmp_path: Path) -> None:
    with rig(type_name, tmp_path) as r:
        sent = event("v1")
        sent["user"] = {**sent["user"], **VECTOR_USER}
        r.post([sent])
        wait_for(lambda: r.state("v1") == "delivered")
        (got,) = r.received()
        for path, expected in r.facts.vectors.items():
            value: Any = got
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            assert value == expected, ".".join(path)


@pytest.mark.parametrize("type_name", TYPES)
def test_a_consent_denied_or_filtered_event_never_reaches_it(type_name: str,
                                                             tmp_path: Path) -> None:
    with rig(type_name, tmp_path, exclude_events=("AddToWishlist",)) as r:
        r.post([event("denied", consent={"marketing": "denied"}),
                event("excluded", name="AddToWishlist"),
                event("sentinel")])
        wait_for(lambda: r.state("sentinel") == "delivered")
        denied, excluded = r.delivery("denied"), r.delivery("excluded")
        assert denied["state"] == "suppressed" and denied["attempts"] == 0
        assert excluded["state"] == "filtered" and "exclude_events" in excluded["reason"]
        assert excluded["attempts"] == 0
        assert r.received_ids() == ["sentinel"]
        assert sum(q["n_events"] for q in r.requests()) == 1  # not even refused ones
