"""Guessing credentials over real HTTP: a burst of failures per address, then 429s."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, Settings, SourceSettings
from pixelrelay.web.credential_guard import BURST
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, make_settings
from tests.log_capture import captured_logs
from tests.support import ServerThread

SITE_KEY = "test-site-key-0001"
SHOP_SECRET = "shpss_test_secret_0001"
NOWHERE = "http://127.0.0.1:9"  # nothing is delivered in these tests
# Loopback aliases stand in for client hosts (uvicorn rewrites headers only from 127.0.0.1).
GUESSER, OTHER, PROXY, STRANGER = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


def gateway_settings(tmp_path: Path, **server: object) -> Settings:
    s = make_settings(tmp_path / "c.db", NOWHERE)
    sources = (*s.sources, SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY)),
               SourceSettings(name="shop", kind="shopify", key=Secret(""),
                              secret=Secret(SHOP_SECRET)))
    return dataclasses.replace(s, sources=sources,
                               server=dataclasses.replace(s.server, **server))


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(create_app(gateway_settings(tmp_path))) as server:
        yield server


def client(gw: ServerThread, local: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, transport=httpx.HTTPTransport(local_address=local))


def shopify(c: httpx.Client, secret: str) -> httpx.Response:
    body = orjson.dumps({"id": 1})
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return c.post("/v1/webhooks/shopify/shop", content=body,
                  headers={"X-Shopify-Topic": "products/update", "X-Shopify-Hmac-Sha256": sig})


Attempt = Callable[[httpx.Client, str], httpx.Response]
EVENT = {"event": "ViewContent", "event_id": "v1"}
# kind -> (a request presenting `secret`, the right secret)
KINDS: dict[str, tuple[Attempt, str]] = {
    "admin token": (lambda c, s: c.get("/v1/deliveries", params={"event_id": "x"},
                                       headers={"X-Admin-Token": s}), ADMIN_TOKEN),
    "login": (lambda c, s: c.post("/login", data={"token": s}), ADMIN_TOKEN),
    "source key": (lambda c, s: c.post("/v1/events", json=EVENT,
                                       headers={"Authorization": f"Bearer {s}"}), SOURCE_KEY),
    "drop-in access token": (lambda c, s: c.post("/open_api/v1.3/event/track/", json={},
                                                 headers={"Access-Token": s}), SOURCE_KEY),
    "site key": (lambda c, s: c.post("/v1/collect", content=orjson.dumps({"k": s})),
                 SITE_KEY),
    "Shopify signature": (shopify, SHOP_SECRET),
}


def wrong(r: httpx.Response) -> bool:
    """Refused as a wrong credential (the drop-in endpoint answers as TikTok: 200, 40105)."""
    if r.request.url.path.startswith("/open_api/"):
        return r.status_code == 200 and r.json()["code"] == 40105
    return r.status_code == 401


def guess_until_refused(c: httpx.Client, attempt: Attempt, limit: int = 2 * BURST
                        ) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    while len(answers) < limit and (not answers or answers[-1].status_code != 429):
        answers.append(attempt(c, f"wrong-{len(answers)}"))
    return answers


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_burst_of_wrong_credentials_earns_429_with_retry_after(gw: ServerThread,
                                                                 kind: str) -> None:
    attempt, right = KINDS[kind]
    with client(gw, GUESSER) as guesser, client(gw, OTHER) as other:
        answers = guess_until_refused(guesser, attempt)
        assert all(wrong(r) for r in answers[:BURST]), [r.text for r in answers]
        refused = answers[-1]
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        if kind == "drop-in access token":
            assert refused.json()["code"] == 40100  # TikTok's "too many requests"
        else:
            assert refused.json()["error"] == "rate_limited"
        # Refused before the credential is looked at: a right guess would otherwise show.
        assert attempt(guesser, right).status_code == 429
        # Other addresses are not affected, right or wrong.
        accepted = attempt(other, right)
        assert not wrong(accepted) and accepted.status_code < 400, accepted.text
        assert wrong(attempt(other, "wrong"))


def test_valid_credentials_are_never_counted_and_kinds_are_apart(gw: ServerThread) -> None:
    with client(gw, GUESSER) as c:
        events = [c.post("/v1/events", json={"event": "ViewContent", "event_id": f"ok{i}"},
                         headers={"Authorization": f"Bearer {SOURCE_KEY}"})
                  for i in range(3 * BURST)]
        assert {r.status_code for r in events} == {202}
        assert guess_until_refused(c, KINDS["source key"][0])[-1].status_code == 429
        # The same address's operator still reaches the admin endpoints.
        assert c.get("/v1/deliveries", params={"event_id": "ok0"},
                     headers={"X-Admin-Token": ADMIN_TOKEN}).status_code == 200
        # Asking without any credential is not a guess.
        for _ in range(2 * BURST):
            assert c.get("/v1/diagnostics").status_code == 401


def test_one_warning_per_burst_naming_the_address(gw: ServerThread) -> None:
    with client(gw, GUESSER) as c, captured_logs() as logs:
        for i in range(3 * BURST):
            c.get("/v1/deliveries", params={"event_id": "x"}, headers={"X-Admin-Token": f"g{i}"})
    warnings = logs.at_least(logging.WARNING)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    line = warnings[0].getMessage()
    assert GUESSER in line and "admin token" in line and "g1" not in line


def test_the_client_behind_a_trusted_proxy_is_the_one_counted(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path, trusted_proxies=(PROXY,))
    with ServerThread(create_app(settings)) as gw, client(gw, PROXY) as proxy, \
            client(gw, STRANGER) as stranger, captured_logs() as logs:
        def via(c: httpx.Client, forwarded_for: str) -> Attempt:
            return lambda _c, s: c.post("/v1/events", json=EVENT, headers={
                "Authorization": f"Bearer {s}", "X-Forwarded-For": forwarded_for})

        assert guess_until_refused(proxy, via(proxy, "203.0.113.5"))[-1].status_code == 429
        # Another visitor behind the same proxy has a budget of its own ...
        assert via(proxy, "203.0.113.6")(proxy, "wrong").status_code == 401
        # ... and a client that is not our proxy cannot pick an address to be counted as.
        refused = guess_until_refused(stranger, via(stranger, "203.0.113.7"))
        assert refused[-1].status_code == 429
        assert via(stranger, "203.0.113.8")(stranger, "wrong").status_code == 429
    logged = " ".join(r.getMessage() for r in logs.at_least(logging.WARNING))
    assert "203.0.113.5" in logged and STRANGER in logged and "203.0.113.7" not in logged
