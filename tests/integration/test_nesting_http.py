"""Deeply nested JSON over real HTTP: every endpoint that decodes a body refuses one nested
deeper than 32 levels with 400 (the drop-in: TikTok's 40002) naming the field, never a 500."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pixelrelay.app import create_app
from pixelrelay.config import Secret, SourceSettings
from pixelrelay.pipeline.nesting import MAX_DEPTH, REASON
from tests.conftest import PIXEL, SOURCE_KEY, make_settings
from tests.log_capture import Records, captured_logs
from tests.support import ServerThread

SITE_KEY = "nesting-site-key-0001"
SHOP_SECRET = "shpss_nesting_secret_0001"
LEVELS = (33, 300, 1000)  # levels of {"a": ...} under the field; 1,000 is within orjson's 1,024


DEEP = "@deep@"  # where `dumps` puts the nesting (orjson writes no more than 254 levels)


def nest(levels: int) -> str:
    return DEEP + str(levels)


def dumps(doc: Any) -> bytes:
    """JSON text of `doc`, each nest(n) in it written as n levels of {"a": ...}."""
    text = orjson.dumps(doc)
    while (start := text.find(b'"' + DEEP.encode())) >= 0:
        end = text.index(b'"', start + 1)
        levels = int(text[start + 1 + len(DEEP):end])
        text = text[:start] + b'{"a":' * levels + b"1" + b"}" * levels + text[end + 1:]
    return text


def under(field: str) -> str:
    """The start of the path the refusal names: `field`, then its keys ("a")."""
    return field + ".a.a.a"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Records]]:
    tmp: Path = tmp_path_factory.mktemp("nesting")
    base = make_settings(tmp / "n.db", "http://127.0.0.1:9")  # nothing here is delivered
    settings = dataclasses.replace(base, sources=(
        *base.sources, SourceSettings(name="site", kind="browser", key=Secret(SITE_KEY)),
        SourceSettings(name="shop", kind="shopify", key=Secret(""), secret=Secret(SHOP_SECRET))))
    server = ServerThread(create_app(settings))
    with server, captured_logs() as logs, httpx.Client(base_url=server.url,
                                                         timeout=30) as client:
        yield client, logs
    assert logs.tracebacks() == []


def refused(r: httpx.Response, field: str, logs: Records) -> None:
    """400 too_deep naming `field` (and the reason), and no traceback anywhere."""
    assert r.status_code == 400, r.text[:300]
    body = r.json()
    assert body["error"] == "too_deep"
    assert body["field"].startswith(field), body["field"]
    assert body["reason"] == f"{body['field']}: {REASON}"
    assert logs.tracebacks() == []


def test_reason_names_the_limit() -> None:
    assert REASON == "nested deeper than 32 levels" and MAX_DEPTH == 32


@pytest.mark.parametrize("levels", LEVELS)
def test_events_endpoint(gw: tuple[httpx.Client, Records], levels: int) -> None:
    client, logs = gw
    auth = {"authorization": f"Bearer {SOURCE_KEY}"}
    deep = {"event": "Purchase", "properties": nest(levels)}
    r = client.post("/v1/events", content=dumps(deep), headers=auth)
    refused(r, under("properties"), logs)
    # In a batch the whole request is refused, naming the event by its index.
    good = {"event": "ViewContent", "event_id": f"good-{levels}"}
    r = client.post("/v1/events", content=dumps({"events": [good, deep]}), headers=auth)
    refused(r, under("events[1].properties"), logs)
    # ... and nothing of it was kept: the good event is new when sent again on its own.
    r = client.post("/v1/events", content=dumps(good), headers=auth)
    assert r.status_code == 202 and r.json()["accepted"] == 1


def test_the_limit_is_exact(gw: tuple[httpx.Client, Records]) -> None:
    """The body is level 1: an event with 31 levels under `properties` is 32 deep, accepted;
    one more level is refused."""
    client, logs = gw
    auth = {"authorization": f"Bearer {SOURCE_KEY}"}
    for levels, status in ((MAX_DEPTH - 1, 202), (MAX_DEPTH, 400)):
        r = client.post("/v1/events", headers=auth, content=dumps(
            {"event": "Purchase", "properties": nest(levels)}))
        assert r.status_code == status, r.text[:300]
    assert logs.tracebacks() == []


@pytest.mark.parametrize("levels", LEVELS)
def test_collect_endpoint(gw: tuple[httpx.Client, Records], levels: int) -> None:
    client, logs = gw
    body = {"k": SITE_KEY, "event": "Purchase", "properties": nest(levels)}
    refused(client.post("/v1/collect", content=dumps(body)),
            under("properties"), logs)
    # The same with the key in the header, and the nesting in a field the tag does not send.
    r = client.post("/v1/collect", content=dumps({"identify": nest(levels)}),
                    headers={"x-pixelrelay-key": SITE_KEY})
    refused(r, under("identify"), logs)


@pytest.mark.parametrize("levels", LEVELS)
def test_tiktok_drop_in(gw: tuple[httpx.Client, Records], levels: int) -> None:
    """As TikTok answers a bad field: HTTP 200, code 40002, the field in TikTok's notation."""
    client, logs = gw
    body = {"event_source": "web", "event_source_id": PIXEL, "data": [
        {"event": "ViewContent", "event_time": int(time.time())},
        {"event": "Purchase", "event_time": int(time.time()), "properties": nest(levels)}]}
    r = client.post("/open_api/v1.3/event/track/", content=dumps(body),
                    headers={"access-token": SOURCE_KEY})
    assert r.status_code == 200
    answer = r.json()
    assert answer["code"] == 40002
    assert answer["message"].startswith(under("data.1.properties"))
    assert answer["message"].endswith(f": {REASON}")
    assert logs.tracebacks() == []


@pytest.mark.parametrize("levels", LEVELS)
def test_shopify_webhook(gw: tuple[httpx.Client, Records], levels: int) -> None:
    client, logs = gw
    order = {"id": 1000 + levels, "line_items": [{"sku": "s", "quantity": 1, "price": "1.00",
                                                  "properties": nest(levels)}]}
    body = dumps(order)
    signature = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256)
                                 .digest()).decode()
    r = client.post("/v1/webhooks/shopify/shop", content=body, headers={
        "x-shopify-topic": "orders/create", "x-shopify-hmac-sha256": signature})
    refused(r, under("line_items[0].properties"), logs)
