"""The emulator over real HTTP (uvicorn on 127.0.0.1): auth, dedup, faults, control endpoints."""

from __future__ import annotations

import concurrent.futures
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from pixelrelay.clock import FakeClock
from pixelrelay.emulator import Emulator, create_emulator_app
from tests.support import wait_for

TRACK = "/open_api/v1.3/event/track/"
TOKEN = "tok-123"
PIXEL = "PIXEL1"
SHA = hashlib.sha256(b"alice@example.com").hexdigest()
T0 = 1_776_943_380
HOUR = 3600.0


def event(name: str = "Purchase", event_id: str | None = "order_1", **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"event": name, "event_time": T0, "user": {"email": [SHA]}, **extra}
    if event_id is not None:
        ev["event_id"] = event_id
    return ev


def body(*events: dict[str, Any], pixel: str = PIXEL, **top: Any) -> dict[str, Any]:
    return {"event_source": "web", "event_source_id": pixel, "data": list(events), **top}


@contextmanager
def serve(emu: Emulator) -> Iterator[httpx.Client]:
    """Run the emulator app in uvicorn on a free loopback port; yield a client bound to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_emulator_app(emu), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


Post = Callable[..., dict[str, Any]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=float(T0))


@pytest.fixture
def emu(clock: FakeClock) -> Emulator:
    return Emulator(access_tokens=[TOKEN], pixel_codes=[PIXEL], clock=clock, seed=42)


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with serve(emu) as c:
        yield c


@pytest.fixture
def post(client: httpx.Client) -> Post:
    def _post(payload: Any, token: str | None = TOKEN, status: int = 200) -> dict[str, Any]:
        headers = {} if token is None else {"Access-Token": token}
        r = client.post(TRACK, json=payload, headers=headers)
        assert r.status_code == status, r.text
        return r.json() if status == 200 else {"text": r.text}

    return _post


def test_valid_request_gets_tiktok_envelope_and_is_recorded(post: Post, emu: Emulator) -> None:
    reply = post(body(event(), test_event_code="TEST1", partner_name="pixelrelay"))
    assert reply["code"] == 0 and reply["message"] == "OK" and reply["data"] == {}
    assert isinstance(reply["request_id"], str) and reply["request_id"]
    (recorded,) = emu.events
    assert recorded["event"] == "Purchase" and recorded["event_id"] == "order_1"
    assert recorded["_pixel_code"] == PIXEL and recorded["_event_source"] == "web"
    assert recorded["_test_event_code"] == "TEST1"
    assert recorded["_request_id"] == reply["request_id"]
    assert recorded["_received_at"] == float(T0)


@pytest.mark.parametrize(
    ("token", "code", "message"),
    [
        (None, 40104, "Access token is null, set it in http header with key Access-Token"),
        ("", 40104, "Access token is null"),
        ("wrong", 40105, "Access token"),
        (f"Bearer {TOKEN}", 40105, "Access token"),
    ],
)
def test_auth_codes(post: Post, emu: Emulator, token: str | None, code: int, message: str) -> None:
    reply = post(body(event()), token=token)
    assert reply["code"] == code and reply["message"].startswith(message)
    assert emu.events == []
    assert emu.requests[-1].code == code and emu.requests[-1].http_status == 200


def test_pixel_not_allowed_is_40001(post: Post, emu: Emulator) -> None:
    reply = post(body(event(), pixel="OTHERPIXEL"))
    assert reply["code"] == 40001
    assert reply["message"].startswith("No permission to operate pixel code: OTHERPIXEL")
    assert emu.events == []


def test_any_token_and_pixel_when_unconfigured(clock: FakeClock) -> None:
    with serve(Emulator(clock=clock)) as client:
        r = client.post(TRACK, json=body(event(), pixel="ANY"), headers={"Access-Token": "x"})
        assert r.json()["code"] == 0


def test_contract_violation_is_http_200_code_40002_and_nothing_recorded(
    post: Post, emu: Emulator, client: httpx.Client
) -> None:
    bad = event(event_id="b", event_time=T0 * 1000)
    reply = post(body(event(event_id="a"), bad))
    assert reply["code"] == 40002
    assert reply["message"].startswith("data.1.event_time:")
    assert emu.events == [] and emu.requests[-1].errors == [reply["message"]]
    r = client.post(
        TRACK, content=b'{"a":1}', headers={"Access-Token": TOKEN, "Content-Type": "text/plain"}
    )
    assert r.status_code == 200 and r.json()["code"] == 40002


def test_missing_trailing_slash_404_and_wrong_method_405(client: httpx.Client) -> None:
    headers = {"Access-Token": TOKEN}
    assert client.post(TRACK.rstrip("/"), json=body(event()), headers=headers).status_code == 404
    assert client.get(TRACK).status_code == 405


def test_dedup_within_48h_but_not_after(post: Post, emu: Emulator, clock: FakeClock) -> None:
    assert post(body(event()))["code"] == 0
    clock.advance(47 * HOUR)
    # Same key twice inside one batch and once more across requests: all dropped, still code 0.
    assert post(body(event(), event()))["code"] == 0
    assert len(emu.events) == 1 and emu.duplicates == 2
    # Another event name or pixel-less event_id is a different key; no event_id never dedups.
    assert post(body(event("AddToCart"), event(event_id=None), event(event_id=None)))["code"] == 0
    assert len(emu.events) == 4 and emu.duplicates == 2
    clock.advance(HOUR - 1)
    assert post(body(event()))["code"] == 0
    assert emu.duplicates == 3  # one second short of 48 h: still a duplicate
    clock.advance(1)  # 48 h after the first copy: the window counted from it is over
    assert post(body(event()))["code"] == 0
    assert [e["event"] for e in emu.events].count("Purchase") == 4
    assert emu.duplicates == 3
    clock.advance(1 * HOUR)  # and the re-accepted copy opens a new window
    post(body(event()))
    assert emu.duplicates == 4 and emu.requests[-1].duplicates == 1


def test_http_5xx_fault(post: Post, emu: Emulator) -> None:
    emu.faults.http_5xx_rate = 1.0
    post(body(event()), status=503)
    assert emu.events == [] and emu.requests[-1].http_status == 503
    assert emu.requests[-1].code is None


@pytest.mark.parametrize(
    ("field", "code"), [("code_40100_rate", 40100), ("code_50000_rate", 50000)]
)
def test_code_faults(post: Post, emu: Emulator, field: str, code: int) -> None:
    setattr(emu.faults, field, 1.0)
    reply = post(body(event()))
    assert reply["code"] == code
    assert emu.events == []


def test_fault_rates_are_seeded_and_reproducible(clock: FakeClock) -> None:
    outcomes = []
    for _ in range(2):
        emulator = Emulator(clock=clock, seed=3)
        emulator.faults.code_40100_rate = 0.5
        with serve(emulator) as client:
            codes = [
                client.post(
                    TRACK, json=body(event(event_id=None)), headers={"Access-Token": "t"}
                ).json()["code"]
                for _ in range(30)
            ]
        outcomes.append(codes)
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {0, 40100}


def test_reject_event_fault_names_the_field(post: Post, emu: Emulator) -> None:
    emu.faults.reject_event = "Lead"
    reply = post(body(event(event_id="a"), event("Lead", event_id="b")))
    assert reply["code"] == 40002 and reply["message"].startswith("data.1.event:")
    assert emu.events == []
    assert post(body(event(event_id="c")))["code"] == 0


@pytest.mark.parametrize("code", [40105, 40001])
def test_setup_error_answers_every_request(post: Post, emu: Emulator, code: int) -> None:
    emu.faults.setup_error_code = code
    for _ in range(3):
        assert post(body(event(event_id=None)))["code"] == code
    assert emu.events == []
    if code == 40001:
        assert PIXEL in emu.requests[-1].message


def test_latency_fault(post: Post, emu: Emulator, client: httpx.Client) -> None:
    started = time.perf_counter()
    post(body(event(event_id="fast")))
    fast = time.perf_counter() - started
    emu.faults.latency_ms = 300
    started = time.perf_counter()
    post(body(event(event_id="slow")))
    slow = time.perf_counter() - started
    # asyncio.sleep measures on the loop's clock; allow its resolution (seen: 0.29998 s).
    assert slow >= 0.29 and emu.requests[-1].latency >= 0.29
    assert emu.requests[0].latency < 0.3 and fast < slow
    # While a slow request is being answered, /stats counts it in flight.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, body(event(event_id="slower")))
        wait_for(lambda: emu.in_flight == 1, timeout=5)
        pending.result()
    assert client.get("/stats").json()["in_flight"] == 0


def test_control_endpoints(post: Post, emu: Emulator, client: httpx.Client) -> None:
    post(body(event(event_id="a"), event("Lead", event_id="b"), test_event_code="T1"))
    post(body(event(event_id="a")))  # duplicate
    post(body(event(event_id="c")), token="wrong")

    assert [e["event_id"] for e in client.get("/events").json()] == ["a", "b"]
    assert [e["event"] for e in client.get("/events", params={"event": "Lead"}).json()] == ["Lead"]
    assert client.get("/events", params={"event_id": "a"}).json()[0]["_pixel_code"] == PIXEL
    assert client.get("/events", params={"pixel_code": "NOPE"}).json() == []
    assert len(client.get("/events", params={"test_event_code": "T1"}).json()) == 2
    assert client.get("/events", params={"test_event_code": "T2"}).json() == []

    stats = client.get("/stats").json()
    assert stats["requests"] == 3 and stats["events"] == 2 and stats["duplicates"] == 1
    assert stats["by_code"] == {"0": 2, "40105": 1}
    requests = client.get("/requests").json()
    assert [(r["code"], r["n_events"], r["recorded"], r["duplicates"]) for r in requests] == [
        (0, 2, 2, 0), (0, 1, 0, 1), (40105, 1, 0, 0)]
    assert requests[0]["request_id"] == client.get("/events").json()[0]["_request_id"]

    r = client.post("/faults", json={"code_40100_rate": 0.25, "reject_event": "Lead"})
    assert r.status_code == 200
    assert r.json()["code_40100_rate"] == 0.25 and r.json()["reject_event"] == "Lead"
    assert emu.faults.code_40100_rate == 0.25
    assert client.post("/faults", json={"http_5xx_rate": "lots"}).status_code == 400
    assert client.post("/faults", json={"bogus": 1}).status_code == 400
    assert client.get("/faults").json()["reject_event"] == "Lead"

    assert client.post("/reset").status_code == 200
    assert client.get("/events").json() == []
    assert client.get("/stats").json()["requests"] == 0
    assert emu.faults.code_40100_rate == 0.0 and emu.duplicates == 0
    # Reset forgets dedup keys too: the same event is accepted again.
    post(body(event(event_id="a")))
    assert len(emu.events) == 1


def test_app_state_holds_the_emulator(emu: Emulator) -> None:
    assert create_emulator_app(emu).state.emulator is emu
    assert isinstance(create_emulator_app().state.emulator, Emulator)


def test_full_size_batch_is_accepted_and_1001_refused(post: Post, emu: Emulator) -> None:
    assert post(body(*[event(event_id=str(i)) for i in range(1000)]))["code"] == 0
    reply = post(body(*[event(event_id=f"x{i}") for i in range(1001)]))
    assert reply == reply | {"code": 40002, "message": "data: at most 1000 events"}
    assert len(emu.events) == 1000


def test_a_sender_killed_mid_body_is_not_a_traceback(client: httpx.Client, emu: Emulator,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A delivery process killed while uploading leaves half a body: the emulator records
    nothing and logs no error (the reliability suite does this on purpose, dozens of times)."""
    url = httpx.URL(str(client.base_url))
    with socket.create_connection((url.host, url.port)) as raw:
        raw.sendall(f"POST {TRACK} HTTP/1.1\r\nHost: x\r\nAccess-Token: {TOKEN}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"data\":"
                    .encode())
    wait_for(lambda: emu.in_flight == 0, timeout=5)
    time.sleep(0.2)
    assert emu.requests == [] and client.get("/stats").json()["requests"] == 0
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
