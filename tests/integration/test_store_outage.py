"""A PostgreSQL outage over real HTTP: every route that reaches the store answers 503 with
Retry-After (a page for a browser), /metrics keeps the process's own counters, and the
whole outage is one warning and one recovery line, never a traceback per request or cycle.

The outage is the one an operator sees when the database restarts or is failed over: the
gateway's connections are terminated (pg_terminate_backend) and new ones are refused until
the database takes connections again. Each test has a database of its own, since
terminating every backend of the shared test database would cut other tests' connections.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from pixelrelay.app import create_app, create_delivery_app
from pixelrelay.store.postgres import writer
from tests.conftest import (
    ADMIN_TOKEN,
    POSTGRES,
    SOURCE_KEY,
    _postgres_unreachable,
    emu_state,
    make_settings,
)
from tests.log_capture import Records, captured_logs
from tests.support import ServerThread, wait_for

ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
BURST = 20


class Database:
    """A PostgreSQL database of this test's own, which it can take down and bring back."""

    def __init__(self) -> None:
        self.name = f"p24_{uuid.uuid4().hex[:12]}"
        parts = urlsplit(POSTGRES)
        self.url = urlunsplit(parts._replace(path=f"/{self.name}"))

    def _admin(self, sql: str, params: tuple[object, ...] = ()) -> None:
        # From the shared database: a database cannot refuse connections to itself.
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(sql, params)

    def create(self) -> None:
        self._admin(f"CREATE DATABASE {self.name}")

    def drop(self) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def go_down(self) -> None:
        self._admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))

    def come_back(self) -> None:
        self._admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    reason = _postgres_unreachable()
    if reason is not None:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES} ({reason})")
    # A read waits this long for a pooled connection before it fails (10 s in production):
    # shortened so a burst of failing requests takes seconds.
    monkeypatch.setattr(writer, "CONNECT_TIMEOUT_S", 1.0)
    db = Database()
    db.create()
    try:
        yield db
    finally:
        db.drop()


def storage_lines(logs: Records) -> tuple[list[str], list[str]]:
    """(warnings, infos) of the process's outage log."""
    ours = [r for r in logs.records if r.name == "pixelrelay.storage"]
    return ([r.getMessage() for r in ours if r.levelno == logging.WARNING],
            [r.getMessage() for r in ours if r.levelno == logging.INFO])


def absorbed(line: str) -> int:
    found = re.search(r"(\d+) failure\(s\) absorbed", line)
    assert found is not None, line
    return int(found.group(1))


def ingest(url: str, event_id: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                      json={"event": "ViewContent", "event_id": event_id,
                            "timestamp": int(time.time())}, timeout=30)


async def burst(url: str, cookie: dict[str, str]) -> list[int]:
    """BURST requests at once, over the read endpoints and ingest."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client, \
            httpx.AsyncClient(base_url=url, timeout=30, cookies=cookie) as browser:
        def call(i: int) -> Coroutine[Any, Any, httpx.Response]:
            if i % 4 == 0:
                return client.get("/v1/diagnostics", headers=ADMIN)
            if i % 4 == 1:
                return browser.get("/")
            if i % 4 == 2:
                return client.get("/v1/deliveries", params={"event_id": "e1"}, headers=ADMIN)
            return client.post("/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                               json={"event": "ViewContent", "event_id": f"b{i}",
                                     "timestamp": int(time.time())})

        answers = await asyncio.gather(*(call(i) for i in range(BURST)))
    return [r.status_code for r in answers]


def assert_unavailable(r: httpx.Response, html: bool = False) -> None:
    assert r.status_code == 503, (r.request.url, r.status_code, r.text[:300])
    assert r.headers["retry-after"].isdigit()
    if html:
        assert r.headers["content-type"].startswith("text/html")
        assert "Storage unavailable" in r.text
    else:
        assert r.json()["error"] == "unavailable"
        assert "storage is unavailable" in r.json()["reason"]
    assert "Traceback" not in r.text and "StoreUnavailable" not in r.text


def test_every_route_answers_503_through_an_outage_and_logs_it_once(
        database: Database, emulator: ServerThread) -> None:
    app = create_app(make_settings(database.url, emulator.url))
    with ServerThread(app) as gw, captured_logs() as logs:
        assert ingest(gw.url, "e1").status_code == 202
        cookie = {"pixelrelay_session": httpx.post(
            f"{gw.url}/login", data={"token": ADMIN_TOKEN}).cookies["pixelrelay_session"]}
        assert httpx.Client(cookies=cookie).get(f"{gw.url}/").status_code == 200
        assert "pixelrelay_queue_depth" in httpx.get(f"{gw.url}/metrics").text

        database.go_down()
        get = httpx.Client(base_url=gw.url, timeout=30)
        browser = httpx.Client(base_url=gw.url, timeout=30, cookies=cookie)
        page = {"Accept": "text/html"}
        # The page, signed in by cookie (the session lookup fails) and by token.
        assert_unavailable(browser.get("/", headers=page), html=True)
        assert_unavailable(get.get("/", headers=ADMIN), html=True)
        assert_unavailable(get.get("/v1/diagnostics", headers=ADMIN))
        assert_unavailable(browser.get("/v1/diagnostics"))
        assert_unavailable(get.get("/v1/deliveries", params={"event_id": "e1"},
                                   headers=ADMIN))
        assert_unavailable(get.get("/v1/events/e1/trace", headers=ADMIN))
        assert_unavailable(get.get("/v1/events/e1/trace", headers={**ADMIN, **page}),
                           html=True)
        assert_unavailable(get.post("/v1/destinations/tiktok/resume", headers=ADMIN))
        assert_unavailable(browser.post("/destinations/tiktok/resume", headers=page,
                                        data={"csrf": "x"}), html=True)
        assert ingest(gw.url, "e2").status_code == 503
        assert get.get("/healthz").status_code == 200  # liveness: it reads no store

        # /metrics: this process's counters, without the gauges it cannot read.
        scrape = get.get("/metrics")
        assert scrape.status_code == 200
        assert 'pixelrelay_http_request_duration_seconds_count{method="GET",' \
               'path="/v1/diagnostics",status="503"}' in scrape.text
        assert "pixelrelay_queue_depth{" not in scrape.text
        assert "omitted: the database could not be read" in scrape.text

        statuses = asyncio.run(burst(gw.url, cookie))
        assert statuses == [503] * BURST

        warnings, infos = storage_lines(logs)
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith("storage unavailable: ")
        assert infos == []
        assert logs.tracebacks() == []
        assert [r.getMessage() for r in logs.at_least(logging.ERROR)] == []

        database.come_back()
        # The pool reconnects on its own backoff (seconds after a short outage).
        wait_for(lambda: get.get("/v1/diagnostics", headers=ADMIN).status_code == 200,
                 timeout=90, interval=0.5)
        assert browser.get("/").status_code == 200
        assert "pixelrelay_queue_depth{" in get.get("/metrics").text
        assert ingest(gw.url, "e3").status_code == 202
        warnings, infos = storage_lines(logs)
        recovered = [line for line in infos if "available again" in line]
        assert len(recovered) == 1, infos
        # Every request above, and the delivery cycles of the same process, in one burst.
        assert absorbed(recovered[0]) >= 10 + BURST
        assert len(warnings) == 1, warnings
        assert logs.tracebacks() == []
        get.close()
        browser.close()
        wait_for(lambda: {"e1", "e3"} <= {e["event_id"] for e in
                                          emu_state(emulator).events},
                 timeout=30)


def test_delivery_process_logs_one_warning_for_a_burst_of_failed_cycles(
        database: Database, emulator: ServerThread) -> None:
    settings = make_settings(database.url, emulator.url)
    with ServerThread(create_app(settings, delivery=False)) as api:
        assert ingest(api.url, "before").status_code == 202
    app = create_delivery_app(settings)
    emu = emu_state(emulator)
    with ServerThread(app) as deliver, captured_logs() as logs:
        wait_for(lambda: any(e["event_id"] == "before" for e in emu.events))
        outage = app.state.gateway.outage

        database.go_down()
        # A cycle a second per worker, a beat every 5 s: wait for a burst of them.
        wait_for(lambda: outage.burst.failures >= 8, timeout=60)
        scrape = httpx.get(f"{deliver.url}/metrics", timeout=30)
        assert scrape.status_code == 200 and "pixelrelay_queue_depth{" not in scrape.text
        warnings, infos = storage_lines(logs)
        assert len(warnings) == 1, warnings
        assert logs.tracebacks() == []
        assert [r.getMessage() for r in logs.at_least(logging.ERROR)] == []

        database.come_back()
        wait_for(lambda: not outage.failing, timeout=90, interval=0.2)
        with ServerThread(create_app(settings, delivery=False)) as api:
            assert ingest(api.url, "after").status_code == 202
        wait_for(lambda: any(e["event_id"] == "after" for e in emu.events), timeout=30)
        warnings, infos = storage_lines(logs)
        assert len(warnings) == 1, warnings
        recovered = [line for line in infos if "available again" in line]
        assert len(recovered) == 1 and absorbed(recovered[0]) >= 8, infos
        assert logs.tracebacks() == []
