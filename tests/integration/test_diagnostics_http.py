"""Diagnostics over real HTTP: a known traffic mix shows up exactly in the JSON, page, metrics."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pixelrelay.app import create_app
from pixelrelay.config import ConsentSettings, Secret, Settings, SourceSettings
from pixelrelay.destinations import REGISTRY
from pixelrelay.diagnostics.endpoints import session_key
from pixelrelay.diagnostics.report import match_score
from tests.conftest import ADMIN_TOKEN, SOURCE_KEY, make_settings
from tests.support import ServerThread, wait_for

SITE_KEY = "test-site-key-0001"
SERVER = {"Authorization": f"Bearer {SOURCE_KEY}"}
BROWSER = {"X-Pixelrelay-Key": SITE_KEY}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
UA = "Mozilla/5.0 (X11; Linux x86_64)"


def mix_settings(db: Path | str, api_url: str) -> Settings:
    s = make_settings(db, api_url, exclude_events=("AddToWishlist",),
                      consent=ConsentSettings(require_in_regions=("EEA",)))
    site = SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY))
    return dataclasses.replace(s, sources=(*s.sources, site))


def post_mix(gw: str) -> None:
    """Server: 8 accepted (5 deliverable, 1 TikTok-rejected, 1 suppressed, 1 filtered), 1
    duplicate, 3 invalid; browser: 1 accepted, 1 duplicate of a server purchase."""
    now = int(time.time())

    def ev(name: str, eid: str, **kw: Any) -> dict[str, Any]:
        return {"event": name, "event_id": eid, "timestamp": now, **kw}

    server = [
        ev("Purchase", "ord_1", user={"email": "a@example.com", "phone": "+4917012345678",
                                      "ttclid": "E.C.P.1", "ip": "203.0.113.1", "user_agent": UA},
           properties={"value": 10, "currency": "EUR"}),
        ev("Purchase", "ord_2", user={"email": "b@example.com", "ip": "203.0.113.2",
                                      "user_agent": UA}),
        ev("Purchase", "ord_3", user={"phone": "+4917012345679", "ttclid": "E.C.P.3"}),
        ev("ViewContent", "v1", user={"external_id": "cust_1", "ttp": "2.ttp.1"}),
        ev("ViewContent", "v2"),
        ev("Contact", "c1"),  # the emulator refuses it: 40002
        ev("AddToCart", "s1", consent={"marketing": "denied"}),
        ev("AddToWishlist", "w1"),  # excluded by the destination
        ev("ViewContent", "v1", user={"external_id": "cust_1"}),  # duplicate
        {"event": "Purchase", "timestamp": now, "properties": {"value": "12,50"}},
        ev("Purchase", "bad_ip", user={"ip": "not-an-ip"}),
        {"timestamp": now},  # no event name
    ]
    r = httpx.post(f"{gw}/v1/events", headers=SERVER, content=orjson.dumps({"events": server}))
    assert r.status_code == 202, r.text
    assert (r.json()["accepted"], r.json()["duplicates"], len(r.json()["rejected"])) == (8, 1, 3)
    browser = [ev("PageView", "b1", user={"ttp": "2.ttp.b"}), ev("Purchase", "ord_1")]
    r = httpx.post(f"{gw}/v1/events", headers=BROWSER, content=orjson.dumps({"events": browser}))
    assert r.status_code == 202 and (r.json()["accepted"], r.json()["duplicates"]) == (1, 1)


def scrape(gw: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{gw}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture
def gateway(storage_url: str, emulator: ServerThread) -> Iterator[ServerThread]:
    httpx.post(f"{emulator.url}/faults", json={"reject_event": "Contact"})
    with ServerThread(create_app(mix_settings(storage_url, emulator.url))) as gw:
        yield gw


def diag(gw: ServerThread, window: str = "24h") -> dict[str, Any]:
    r = httpx.get(f"{gw.url}/v1/diagnostics", params={"window": window}, headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_numbers_match_the_traffic_mix(gateway: ServerThread) -> None:
    before = scrape(gateway.url)
    post_mix(gateway.url)
    wait_for(lambda: diag(gateway)["totals"]["pending"] == 0
             and diag(gateway)["totals"]["rejected"] == 4, timeout=20)
    d = diag(gateway)
    assert d["totals"] == {"received": 14, "accepted": 9, "duplicates": 2, "merged": 0,
                           "rejected": 4,
                           "delivered": 6, "suppressed": 1, "filtered": 1, "pending": 0,
                           "gave_up": 0}
    by = {e["event"]: e for e in d["events"]}
    assert (by["Purchase"]["received"], by["Purchase"]["accepted"],
            by["Purchase"]["duplicates"], by["Purchase"]["rejected_ingest"]) == (6, 3, 1, 2)
    assert by["Purchase"]["destinations"][0]["dest_event"] == "CompletePayment"
    assert by["Purchase"]["destinations"][0]["delivered"] == 3
    assert by["ViewContent"]["duplicates"] == 1
    assert by["Contact"]["destinations"][0]["rejected"] == 1
    assert by["AddToCart"]["destinations"][0]["suppressed"] == 1
    assert by["AddToWishlist"]["destinations"][0]["filtered"] == 1
    reasons = {(x["event"], x["stage"], x["field"] or x["code"]): x["count"]
               for x in d["rejections"]}
    assert reasons == {("Purchase", "ingest", "properties.value"): 1,
                       ("Purchase", "ingest", "user.ip"): 1,
                       ("(none)", "ingest", "event"): 1, ("Contact", "tiktok", 40002): 1}

    mk = d["match_keys"]
    assert mk["events"] == 6  # delivered: ord_1..3, v1, v2, b1
    assert mk["counts"] == {"email": 2, "phone": 2, "external_id": 1, "ttclid": 2, "ttp": 2,
                            "ip_ua": 2, "first_name": 0, "last_name": 0, "zip_code": 0,
                            "city": 0, "state": 0, "country": 0, "fbc": 0, "fbp": 0}
    weights = REGISTRY["tiktok"].match_weights  # its one destination's type's
    assert mk["score"] == match_score({k: v / 6 for k, v in mk["counts"].items()}, weights)
    assert mk["by_destination"] == [{"destination": "tiktok", "weights": dict(weights),
                                     "score": mk["score"]}]
    assert (mk["purchases"], mk["purchases_with_click_id"]) == (3, {"ttclid": 2, "fbc": 0})
    assert mk["purchases_with_ttclid"] == 2  # the old key, an alias for one release
    # 8 stored server events + the server duplicate of v1; only ord_1 also came from the tag.
    assert d["dedup_readiness"] == {"server_events": 9, "also_from_browser": 1,
                                    "share": round(1 / 9, 4)}
    assert d["enrichment"]["server_events"] == 8
    assert d["latency_s"]["delivered"] == 6 and 0 <= d["latency_s"]["p50"] <= d["latency_s"][
        "p95"] < 20
    assert sum(d["trend"]["received"]) == 9 and sum(d["trend"]["delivered"]) == 6
    assert [a["key"] for a in d["alerts"]] == ["rejection_rate"]  # 4 of 14
    dest = d["destinations"][0]
    assert (dest["name"], dest["state"], dest["queue_depth"], dest["test_events"]) == (
        "tiktok", "active", 0, False)
    assert diag(gateway, "1h")["totals"] == d["totals"]

    after = scrape(gateway.url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    t = {"destination": "tiktok"}
    assert delta("pixelrelay_events_delivered_total", **t, event="CompletePayment") == 3
    assert delta("pixelrelay_events_received_total", **t, event="ViewContent") == 2
    assert delta("pixelrelay_events_suppressed_total", **t, event="AddToCart") == 1
    assert delta("pixelrelay_events_filtered_total", **t, event="AddToWishlist") == 1
    assert delta("pixelrelay_events_rejected_total", **t, event="Contact",
                 stage="destination") == 1
    # One rule for `event`: the TikTok name, also where no destination is known (ingest
    # rejections, duplicates): an incoming Purchase is counted as CompletePayment.
    assert delta("pixelrelay_events_rejected_total", destination="", event="CompletePayment",
                 stage="ingest") == 2  # the value "12,50" and bad_ip
    assert delta("pixelrelay_events_rejected_total", destination="", event="Purchase",
                 stage="ingest") == 0
    assert delta("pixelrelay_events_duplicate_total", event="ViewContent") == 1
    assert delta("pixelrelay_events_duplicate_total", event="CompletePayment") == 1  # browser
    assert delta("pixelrelay_tiktok_responses_total", **t, code="40002") >= 1
    assert delta("pixelrelay_delivery_latency_seconds_count", **t) == 6
    assert after[("pixelrelay_queue_depth", (("destination", "tiktok"),
                                             ("state", "pending")))] == 0
    assert ("pixelrelay_oldest_pending_age_seconds", (("destination", "tiktok"),)) in after
    assert delta("pixelrelay_http_request_duration_seconds_count", method="POST",
                 path="/v1/events", status="202") == 2
    assert delta("pixelrelay_http_request_duration_seconds_count", method="GET",
                 path="/v1/diagnostics", status="200") >= 1
    assert [name for name, _ in after if name.endswith("_created")] == []


def test_page_trace_and_login(gateway: ServerThread) -> None:
    post_mix(gateway.url)
    wait_for(lambda: diag(gateway)["totals"]["rejected"] == 4
             and diag(gateway)["totals"]["pending"] == 0, timeout=20)
    assert httpx.get(f"{gateway.url}/v1/diagnostics").status_code == 401
    assert httpx.get(f"{gateway.url}/v1/diagnostics?window=2d", headers=ADMIN).status_code == 400
    anon = httpx.get(f"{gateway.url}/")
    assert anon.status_code == 401 and "name=token" in anon.text
    wrong = httpx.post(f"{gateway.url}/login", data={"token": "nope"})
    assert wrong.status_code == 401 and "pixelrelay_session" not in wrong.headers.get(
        "set-cookie", "")
    ok = httpx.post(f"{gateway.url}/login", data={"token": ADMIN_TOKEN})
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and ADMIN_TOKEN not in cookie
    with httpx.Client(base_url=gateway.url, cookies=ok.cookies) as browser:
        page = browser.get("/", params={"window": "24h"})
        assert page.status_code == 200
        for metric, value in (("received", 14), ("delivered", 6), ("rejected", 4),
                              ("duplicates", 2), ("suppressed", 1), ("filtered", 1)):
            assert f"data-metric={metric}>{value}</b>" in page.text
        assert "Many events are rejected" in page.text and ADMIN_TOKEN not in page.text
        found = browser.get("/", params={"q": "ord_"}).text
        assert "/v1/events/ord_1/trace" in found and "/v1/events/v1/trace" not in found
        for search, ids in (({"state": "dead"}, ["c1"]), ({"state": "suppressed"}, ["s1"]),
                            ({"state": "filtered", "destination": "tiktok"}, ["w1"]),
                            ({"channel": "browser"}, ["b1"]),
                            ({"q": "ord_", "state": "delivered"}, ["ord_3", "ord_2", "ord_1"]),
                            ({"q": "Purchase", "channel": "browser"}, [])):
            listed = re.findall(r"<a href='/v1/events/([^/']+)/trace'>",
                                browser.get("/", params=search).text)
            assert listed == ids, search
        bad = browser.get("/", params={"state": "lost", "channel": "fax"})
        assert bad.status_code == 400 and "state: &#x27;lost&#x27; is not one of" in bad.text
        assert browser.get("/v1/diagnostics").status_code == 200  # the cookie opens JSON too
        browser.post("/logout")
        assert browser.get("/").status_code == 401

    trace = httpx.get(f"{gateway.url}/v1/events/c1/trace", headers=ADMIN).json()
    d = trace["deliveries"][0]
    assert (d["state"], d["last_code"], d["dead_reason"]) == ("dead", 40002, "rejected")
    assert d["payload"]["event"] == "Contact" and d["payload"]["event_id"] == "c1"
    assert any(a["code"] == 40002 and a["request_id"] for a in d["log"])
    # ord_2, not ord_1: the tag's copy of ord_1 merges into it, and a claim on PostgreSQL
    # passes a row that merge holds (SKIP LOCKED), so ord_1 may go in a later request.
    ok_trace = httpx.get(f"{gateway.url}/v1/events/ord_2/trace", headers=ADMIN).json()
    sent = ok_trace["deliveries"][0]
    # ord_2 shared a request with c1: the trace shows the refused batch, then the accepted half.
    assert sent["state"] == "delivered" and [a["code"] for a in sent["log"]] == [40002, 0]
    assert sent["log"][0]["batch_size"] > sent["log"][1]["batch_size"]
    assert sent["payload"]["user"]["email"][0] != "b@example.com"  # hashed
    assert len(sent["payload"]["user"]["email"][0]) == 64
    html = httpx.get(f"{gateway.url}/v1/events/ord_2/trace",
                     headers={**ADMIN, "Accept": "text/html"})
    assert html.status_code == 200 and "CompletePayment" in html.text
    assert httpx.get(f"{gateway.url}/v1/events/nope/trace", headers=ADMIN).status_code == 404


def test_a_refused_token_shows_as_paused_with_an_alert_logged_once(
        tmp_path: Path, emulator: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path / "p.db", emulator.url,
                             access_token=Secret("tok-zz9-refused"))
    with ServerThread(create_app(settings)) as gw:
        now = int(time.time())
        events = [{"event": "Purchase", "event_id": f"p{i}", "timestamp": now,
                   "user": {"ttclid": "E.C.P.x"}} for i in range(3)]
        r = httpx.post(f"{gw.url}/v1/events", headers=SERVER,
                       content=orjson.dumps({"events": events}))
        assert r.status_code == 202

        def paused() -> bool:
            dest = diag(gw, "1h")["destinations"][0]
            return bool(dest["state"] == "paused" and dest["in_flight"] == 0)

        wait_for(paused, timeout=20)
        d = diag(gw, "1h")
        dest = d["destinations"][0]
        assert dest["queue_depth"] == 3 and dest["oldest_pending_age_s"] >= 0
        assert dest["paused_reason"].startswith("40105")
        alert = next(a for a in d["alerts"] if a["key"] == "paused:tiktok")
        assert "expired" in alert["check"] and "40105" in alert["detail"]
        for url in ("/", "/v1/diagnostics", "/metrics", "/v1/events/p0/trace"):
            assert "tok-zz9" not in httpx.get(f"{gw.url}{url}", headers=ADMIN).text
        logged = [r for r in caplog.records
                  if r.name == "pixelrelay.diagnostics" and "paused:tiktok" in r.getMessage()]
        assert len(logged) == 1  # several reads, one state change, one log line
        m = scrape(gw.url)
        assert m[("pixelrelay_destination_paused", (("destination", "tiktok"),))] == 1
        assert m[("pixelrelay_queue_depth", (("destination", "tiktok"),
                                             ("state", "pending")))] == 3


def login(base_url: str) -> httpx.Response:
    with httpx.Client(base_url=base_url) as client:
        return client.post("/login", data={"token": ADMIN_TOKEN})


def test_sessions_live_in_the_database_and_end_on_logout_or_a_new_token(
        tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    settings = make_settings(db, "http://127.0.0.1:9")
    with ServerThread(create_app(settings)) as first:
        ok = login(first.url)
        assert ok.status_code == 303
        assert "secure" not in ok.headers["set-cookie"].lower()  # plain http, no proxy
        cookie = {"pixelrelay_session": ok.cookies["pixelrelay_session"]}
        second = {"pixelrelay_session": login(first.url).cookies["pixelrelay_session"]}
    # The next process on the database knows both sessions ...
    with ServerThread(create_app(settings)) as gw:
        assert httpx.get(f"{gw.url}/v1/diagnostics", cookies=cookie).status_code == 200
        # ... and a sign-out ends the session for a client that kept the cookie.
        assert httpx.post(f"{gw.url}/logout", cookies=cookie).status_code == 303
        assert httpx.get(f"{gw.url}/v1/diagnostics", cookies=cookie).status_code == 401
    with ServerThread(create_app(settings)) as gw:
        assert httpx.get(f"{gw.url}/", cookies=cookie).status_code == 401
        assert httpx.get(f"{gw.url}/v1/diagnostics", cookies=second).status_code == 200
    rows = sqlite3.connect(db).execute("SELECT id_hash FROM admin_sessions").fetchall()
    assert rows == [(session_key(ADMIN_TOKEN, second["pixelrelay_session"]),)]  # only a hash

    renewed = dataclasses.replace(settings, server=dataclasses.replace(
        settings.server, admin_token=Secret("a-new-admin-token-0002")))
    with ServerThread(create_app(renewed)) as gw:
        assert httpx.get(f"{gw.url}/v1/diagnostics", cookies=second).status_code == 401


def test_the_cookie_is_secure_behind_a_trusted_https_proxy(tmp_path: Path) -> None:
    # Loopback aliases stand in for hosts: the proxy connects from 127.0.0.2, a stranger from
    # 127.0.0.3 (uvicorn itself only ever rewrites headers from 127.0.0.1).
    settings = make_settings(tmp_path / "p.db", "http://127.0.0.1:9")
    settings = dataclasses.replace(settings, server=dataclasses.replace(
        settings.server, trusted_proxies=("127.0.0.2/32",)))
    with ServerThread(create_app(settings)) as gw:
        def cookie_from(local: str, proto: str) -> str:
            with httpx.Client(base_url=gw.url,
                              transport=httpx.HTTPTransport(local_address=local)) as client:
                r = client.post("/login", data={"token": ADMIN_TOKEN},
                                headers={"X-Forwarded-Proto": proto})
                assert r.status_code == 303
                return r.headers["set-cookie"].lower()

        assert "; secure" in cookie_from("127.0.0.2", "https")
        assert "; secure" not in cookie_from("127.0.0.2", "http")
        assert "; secure" not in cookie_from("127.0.0.3", "https")  # not a proxy of ours


def test_every_route_has_its_own_path_label_on_metrics(tmp_path: Path) -> None:
    """/metrics labels requests by route template; a route without one (the dashboard's
    resume form was) would hide among `path="other"` with the scanners' noise."""
    from pixelrelay.metrics import path_label

    app = create_app(make_settings(tmp_path / "l.db", "http://127.0.0.1:9"))
    for route in app.routes:
        template = route.path.replace(":path", "")  # type: ignore[attr-defined]
        concrete = re.sub(r"\{[^}]+\}", "x", template.replace("{version}", "v25.0"))
        assert path_label(concrete) == template, route
