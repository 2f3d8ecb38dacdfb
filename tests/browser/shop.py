"""A test shop for the browser tag in real Chromium: its pages, a stand-in ttq, and what the
gateway and the emulator (as TikTok) received."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pixelrelay.app import create_app
from pixelrelay.config import Secret, Settings, SourceSettings
from tests.conftest import ACCESS_TOKEN, PIXEL, emu_state, make_settings
from tests.support import ServerThread, free_port, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

# What the TikTok Pixel would have received, recorded; it also sets _ttp as the Pixel does.
STAND_IN_TTQ = """<script>
window.ttqCalls = [];
window.ttq = {
  track: function (n, p, o) { ttqCalls.push({name: n, props: p, event_id: o && o.event_id}); },
  identify: function (u) { ttqCalls.push({name: 'identify', props: u}); }
};
document.cookie = '_ttp=2.standin-ttp; path=/';
</script>"""


@dataclasses.dataclass
class Site:
    gateway: ServerThread
    emulator: ServerThread
    shop: ServerThread
    key: str  # the site key pages use unless they name another
    pages: dict[str, str] = dataclasses.field(default_factory=dict)

    def page(self, path: str, body: str, *, key: str | None = None, pixel: bool = True,
             init: dict[str, Any] | None = None, head: str = "", first: str = "",
             sync: bool = False) -> str:
        """Register a shop page that loads the tag the way a theme would; returns its URL.

        `first`: commands the page runs before its `init` (e.g. a consent banner's answer);
        `sync`: the tag is loaded without `async`, so it runs before the body's scripts.
        """
        key = key or self.key
        opts = orjson.dumps({"key": key, **(init or {})}).decode()
        self.pages[path] = f"""<!doctype html><html><head>{head}
{STAND_IN_TTQ if pixel else ''}
<script>
window.pixelrelay = window.pixelrelay || function () {{
  (pixelrelay.q = pixelrelay.q || []).push(arguments); }};
{first}
pixelrelay('init', {opts});
</script>
<script {'' if sync else 'async '}src="{self.gateway.url}/tag.js?k={key}"></script>
</head><body>{body}</body></html>"""
        return f"{self.shop.url}{path}"

    def received(self, event_id: str) -> list[dict[str, Any]]:
        return [e for e in emu_state(self.emulator).events if e.get("event_id") == event_id]

    def delivered(self, event_id: str) -> dict[str, Any]:
        wait_for(lambda: bool(self.received(event_id)), timeout=15)
        return self.received(event_id)[0]


@contextmanager
def open_site(key: str, settings: Callable[[str, str], Settings]) -> Iterator[Site]:
    """The emulator, a gateway with `settings(shop origin, emulator url)` and the shop's page
    server, each on its own loopback port."""
    from pixelrelay.emulator import Emulator, create_emulator_app

    pages: dict[str, str] = {}

    async def serve(request: Request) -> Response:
        html = pages.get(request.url.path)
        return HTMLResponse(html) if html is not None else Response(status_code=404)

    shop_port = free_port()
    emu_app = create_emulator_app(Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL]))
    with ServerThread(emu_app) as emulator:
        app = create_app(settings(f"http://127.0.0.1:{shop_port}", emulator.url))
        shop_app = Starlette(routes=[Route("/{path:path}", serve)])
        with ServerThread(app) as gateway, ServerThread(shop_app, port=shop_port) as shop:
            yield Site(gateway, emulator, shop, key, pages)


def cookies(context: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in context.cookies()}


def ttq_calls(page: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = page.evaluate("window.ttqCalls || []")
    return calls


def loaded(page: Any) -> None:
    page.wait_for_function("window.pixelrelay && window.pixelrelay.loaded")


def collect_hits(page: Any) -> list[dict[str, Any]]:
    """Every /v1/collect body the page posts, from now on, in order. Playwright's sync API
    records them only while the test is inside one of its calls: wait with `idle` or
    `wait_hits`, never with time.sleep."""
    hits: list[dict[str, Any]] = []

    def seen(request: Any) -> None:
        if "/v1/collect" in request.url and request.method == "POST":
            hits.append(orjson.loads(request.post_data or "{}"))

    page.on("request", seen)
    return hits


def idle(page: Any, seconds: float) -> None:
    """Let the page run for a while, recording what it sends meanwhile."""
    page.wait_for_timeout(seconds * 1000)


def wait_hits(page: Any, hits: list[dict[str, Any]], n: int) -> None:
    wait_for(lambda: idle(page, 0.02) or len(hits) >= n)


@contextmanager
def open_tag_site(folder: Path, open_key: str, strict_key: str) -> Iterator[Site]:
    """open_site with two browser sources on the shop's origin: `open_key`, and `strict_key`
    with consent_required."""
    def settings(shop_origin: str, emulator_url: str) -> Settings:
        base = make_settings(folder / "gw.db", emulator_url)
        extra = (SourceSettings(name="open", kind="browser", key=Secret(open_key),
                                allowed_origins=(shop_origin,)),
                 SourceSettings(name="strict", kind="browser", key=Secret(strict_key),
                                allowed_origins=(shop_origin,), consent_required=True))
        return dataclasses.replace(base, sources=base.sources + extra)

    with open_site(open_key, settings) as site:
        yield site
