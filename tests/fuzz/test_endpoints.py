"""Every public endpoint under hypothesis, over real HTTP: any JSON, any bytes, any header set
gets an answer below 500 (503 only as the deliberate "store unavailable") and no traceback."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from pixelrelay.emulator import Emulator, create_emulator_app
from pixelrelay.pipeline import nesting
from tests.conftest import (
    ACCESS_TOKEN,
    ADMIN_TOKEN,
    ENGINES,
    PIXEL,
    SOURCE_KEY,
    engine_url,
    make_settings,
)
from tests.fuzz.strategies import (
    FUZZ,
    dumps,
    events,
    header_values,
    headers,
    json_values,
    mostly,
    shopify_orders,
    text,
    wild_text,
)
from tests.log_capture import Records, captured_logs
from tests.support import ServerThread

SITE_KEY = "fuzz-site-key-0001"
SHOP_SECRET = "shpss_fuzz_secret_0001"
bodies = st.binary(max_size=2048)


def loopback_addresses() -> Iterator[str]:
    """A fresh client address for every request: a run of wrong credentials from one address
    would make every later example stop at the credential guard's 429 (tested elsewhere)."""
    for n in itertools.count(1):
        yield f"127.{1 + n // 64516 % 254}.{1 + n // 254 % 254}.{1 + n % 254}"


@dataclasses.dataclass
class Stack:
    gw: ServerThread
    logs: Records
    cookie: str = ""
    addresses: Iterator[str] = dataclasses.field(default_factory=loopback_addresses)

    def send(self, method: str, path: str, *, hdrs: dict[str, str] | None = None,
             content: bytes | None = None, params: dict[str, str] | None = None,
             **required: str) -> httpx.Response:
        """One request; `required` headers (auth) win over fuzzed ones of the same name."""
        # verify=False: plain http, and it spares loading the CA bundle for every request.
        transport = httpx.HTTPTransport(local_address=next(self.addresses), verify=False)
        merged = {k.lower(): v for k, v in (hdrs or {}).items()}
        merged.update({k.replace("_", "-").lower(): v for k, v in required.items()})
        # Latin-1 bytes: httpx would refuse non-ASCII str values, HTTP carries them fine.
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]
        with httpx.Client(base_url=self.gw.url, timeout=30.0, transport=transport) as client:
            r = client.request(method, path, content=content, headers=raw, params=params)
        assert r.status_code < 500 or (
            r.status_code == 503 and r.json().get("error") == "unavailable"), (
            r.status_code, r.text[:400])
        if path.startswith("/open_api/") and r.status_code == 200:
            assert r.json()["code"] != 50000, r.text  # TikTok's shape of a 500
        if r.status_code == 400 and r.json().get("error") == "too_deep":
            # Deep nesting (strategies.deep_values) is refused naming the field.
            assert r.json()["reason"] == f"{r.json()['field']}: {nesting.REASON}", r.text
        assert self.logs.tracebacks() == []
        if currently_in_test_context():  # what was reached: --hypothesis-show-statistics
            event(f"{method} {path[:30]} -> {r.status_code}")
        return r


@pytest.fixture(scope="module", params=ENGINES)
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One gateway per engine: PostgreSQL refuses some strings SQLite stores (NUL), so the
    same hostile input runs against both."""
    engine: str = request.param
    if engine not in request.config.getoption("engines").split(","):
        pytest.skip(f"--engines excludes {engine}")
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with engine_url(engine, tmp, "fuzz") as url, captured_logs() as logs:
        yield from _stack(url, tmp, logs)
    assert logs.tracebacks() == []


def _stack(url: str, tmp: Path, logs: Records) -> Iterator[Stack]:
    emulator = ServerThread(create_emulator_app(
        Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL])))
    base = make_settings(tmp / "unused.db", emulator.url)
    settings = dataclasses.replace(base, storage=dataclasses.replace(base.storage, url=url),
                                   sources=(
        *base.sources, SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY)),
        SourceSettings(name="shop", kind="shopify", key=Secret(""), secret=Secret(SHOP_SECRET))))
    gateway = ServerThread(create_app(settings))
    with emulator, gateway:
        s = Stack(gateway, logs)
        login = s.send("POST", "/login", content=f"token={ADMIN_TOKEN}".encode(),
                       content_type="application/x-www-form-urlencoded")
        s.cookie = login.cookies["pixelrelay_session"]
        yield s


# -- ingest endpoints ----------------------------------------------------------------------------

@FUZZ
@given(doc=events | st.lists(events, max_size=3).map(lambda e: {"events": e}) | json_values,
       hdrs=headers)
def test_events_any_json(stack: Stack, doc: Any, hdrs: dict[str, str]) -> None:
    stack.send("POST", "/v1/events", hdrs=hdrs, content=dumps(doc),
               authorization=f"Bearer {SOURCE_KEY}")


@FUZZ
@given(body=bodies, hdrs=headers,
       key=st.sampled_from([f"Bearer {SOURCE_KEY}", "Bearer wrong", "Basic x", ""]))
def test_events_any_bytes(stack: Stack, body: bytes, hdrs: dict[str, str], key: str) -> None:
    r = stack.send("POST", "/v1/events", hdrs=hdrs, content=body, authorization=key)
    if key != f"Bearer {SOURCE_KEY}" and "x-pixelrelay-key" not in hdrs:
        assert r.status_code in (401, 429)


tiktok_events = st.fixed_dictionaries({}, optional={
    "event": json_values, "event_time": st.integers(-(2**65), 2**65) | json_values,
    "event_id": json_values, "user": json_values, "page": json_values,
    "properties": json_values, "limited_data_use": json_values, "extra": json_values})
tiktok_bodies = st.fixed_dictionaries({}, optional={
    "event_source": st.sampled_from(["web", "app", "tv"]) | json_values,
    "event_source_id": st.sampled_from([PIXEL, "OTHER"]) | json_values,
    "test_event_code": json_values,
    "data": st.lists(tiktok_events, max_size=3) | json_values})


@FUZZ
@given(doc=tiktok_bodies | json_values, raw=st.none() | bodies, hdrs=headers)
def test_drop_in_endpoint(stack: Stack, doc: Any, raw: bytes | None,
                          hdrs: dict[str, str]) -> None:
    stack.send("POST", "/open_api/v1.3/event/track/", hdrs=hdrs,
               content=dumps(doc) if raw is None else raw, access_token=SOURCE_KEY)


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(["event", "page", "user", "link", "sid", "consent",
                                            "properties", "event_id", "k"]), json_values)
       | json_values,
       hit=events, hdrs=headers, key_in_header=st.booleans())
def test_collect(stack: Stack, doc: Any, hit: Any, hdrs: dict[str, str],
                 key_in_header: bool) -> None:
    body = {**hit, **doc} if isinstance(doc, dict) and isinstance(hit, dict) else doc
    if key_in_header:
        stack.send("POST", "/v1/collect", hdrs=hdrs, content=dumps(body),
                   x_pixelrelay_key=SITE_KEY)
    else:
        if isinstance(body, dict):
            body = {**body, "k": SITE_KEY}
        stack.send("POST", "/v1/collect", hdrs=hdrs, content=dumps(body))


@FUZZ
@given(hdrs=headers, origin=st.none() | header_values)
def test_collect_preflight(stack: Stack, hdrs: dict[str, str], origin: str | None) -> None:
    extra = {} if origin is None else {"origin": origin}
    stack.send("OPTIONS", "/v1/collect", hdrs=hdrs, **extra)


@FUZZ
@given(order=shopify_orders | json_values, raw=st.none() | bodies,
       topic=mostly(st.sampled_from(["orders/create", "checkouts/create"]),
                    st.sampled_from(["orders/paid", "products/update", ""]) | header_values),
       hdrs=headers)
def test_shopify_with_a_valid_signature(stack: Stack, order: Any, raw: bytes | None, topic: str,
                                        hdrs: dict[str, str]) -> None:
    body = dumps(order) if raw is None else raw
    signature = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256)
                                 .digest()).decode()
    r = stack.send("POST", "/v1/webhooks/shopify/shop", hdrs=hdrs, content=body,
                   x_shopify_topic=topic, x_shopify_hmac_sha256=signature)
    if r.status_code == 400:
        assert r.json()["reason"]  # a reason Shopify's delivery log shows
    if r.status_code == 200 and not r.json()["event_ids"]:
        assert r.json()["ignored"]  # a skip says why


# -- admin and diagnostics -----------------------------------------------------------------------

@FUZZ
@given(body=bodies | st.builds(lambda t: f"token={quote(t)}".encode(), wild_text),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "text/plain",
                                     "multipart/form-data; boundary=x"]) | header_values,
       hdrs=headers)
def test_login_and_logout(stack: Stack, body: bytes, content_type: str,
                          hdrs: dict[str, str]) -> None:
    r = stack.send("POST", "/login", hdrs=hdrs, content=body, content_type=content_type)
    assert r.status_code in (401, 413, 429)
    stack.send("POST", "/logout", hdrs=hdrs)


def admin_auth(stack: Stack, how: str) -> dict[str, str]:
    return {"token": {"x_admin_token": ADMIN_TOKEN},
            "bearer": {"authorization": f"Bearer {ADMIN_TOKEN}"},
            "cookie": {"cookie": f"pixelrelay_session={stack.cookie}"},
            "wrong": {"x_admin_token": "wrong"}, "none": {}}[how]


auth_kinds = st.sampled_from(["token", "bearer", "cookie", "wrong", "none"])


@FUZZ
@given(how=auth_kinds, window=wild_text, event_id=wild_text, hdrs=headers,
       accept=st.sampled_from(["text/html", "application/json", "*/*"]) | header_values)
def test_admin_reads(stack: Stack, how: str, window: str, event_id: str, hdrs: dict[str, str],
                     accept: str) -> None:
    auth = admin_auth(stack, how)
    stack.send("GET", "/", hdrs=hdrs, params={"window": window, "q": event_id},
               accept=accept, **auth)
    stack.send("GET", "/v1/diagnostics", hdrs=hdrs, params={"window": window},
               **auth)
    stack.send("GET", "/v1/deliveries", hdrs=hdrs, params={"event_id": event_id},
               **auth)
    stack.send("GET", f"/v1/events/{quote(event_id, safe='')}/trace", hdrs=hdrs,
               accept=accept, **auth)


@FUZZ
@given(how=auth_kinds, name=wild_text, body=bodies, hdrs=headers)
def test_resume(stack: Stack, how: str, name: str, body: bytes, hdrs: dict[str, str]) -> None:
    stack.send("POST", f"/v1/destinations/{quote(name, safe='')}/resume", hdrs=hdrs,
               content=body, **admin_auth(stack, how))


@FUZZ
@given(key=wild_text, etag=header_values, hdrs=headers)
def test_metrics_and_tag(stack: Stack, key: str, etag: str, hdrs: dict[str, str]) -> None:
    stack.send("GET", "/metrics", hdrs=hdrs)
    stack.send("GET", "/tag.js", hdrs=hdrs, params={"k": key}, if_none_match=etag)


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"]),
       path=st.sampled_from(["/v1/events", "/open_api/v1.3/event/track/", "/v1/collect",
                             "/v1/webhooks/shopify/shop", "/v1/webhooks/shopify/x", "/login",
                             "/logout", "/v1/diagnostics", "/v1/deliveries", "/metrics",
                             "/tag.js", "/v1/destinations/tiktok/resume", "/", "/healthz"])
       | text.map(lambda t: "/" + quote(t)),
       body=bodies, hdrs=headers)
def test_any_request(stack: Stack, method: str, path: str, body: bytes,
                     hdrs: dict[str, str]) -> None:
    stack.send(method, path, hdrs=hdrs, content=body or None)
