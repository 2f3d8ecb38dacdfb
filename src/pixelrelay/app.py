"""The ASGI apps of each process (serve, serve --no-delivery, deliver --port), wired once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pixelrelay import __version__
from pixelrelay.bursts import BurstLog
from pixelrelay.clock import Clock, SystemClock
from pixelrelay.config import Settings
from pixelrelay.delivery.service import Delivery
from pixelrelay.destinations import REGISTRY, build_destination
from pixelrelay.diagnostics.endpoints import Diagnostics
from pixelrelay.ingest import Ingestor
from pixelrelay.openapi import openapi_json
from pixelrelay.sources.admin import DeliveriesEndpoint, ResumeEndpoint
from pixelrelay.sources.api import EventsEndpoint
from pixelrelay.sources.browser import CollectEndpoint, TagEndpoint
from pixelrelay.sources.credentials import credential_kind, refusal
from pixelrelay.sources.meta_compat import GraphEventsRoute, MetaEventsEndpoint
from pixelrelay.sources.shopify import ShopifyWebhookEndpoint
from pixelrelay.sources.tiktok_compat import TikTokTrackEndpoint
from pixelrelay.store import open_store
from pixelrelay.store.base import DestinationState, Store
from pixelrelay.web.credential_guard import FailedCredentials
from pixelrelay.web.edge import Edge
from pixelrelay.web.http import json_response
from pixelrelay.web.store_guard import guarded

log = logging.getLogger(__name__)
EVENTS_PATH = "/v1/events"
TRACK_PATH = "/open_api/v1.3/event/track/"
COLLECT_PATH = "/v1/collect"


class Gateway:
    """Everything one process runs, wired once: ingest for the API, and delivery unless
    another process does it (`serve --no-delivery`); the app and tests reach it here."""

    def __init__(self, settings: Settings, store: Store, clock: Clock,
                 transport: httpx.AsyncBaseTransport | None, *, delivers: bool = True) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        # One log of store outages for the whole process (routes, delivery, alert check): a
        # warning when one starts, a line when it ends, nothing per request or cycle between.
        self.outage = BurstLog(logging.getLogger("pixelrelay.storage"), "storage")
        self.destinations = [build_destination(d) for d in settings.destinations]
        self.delivery = (Delivery(settings, store, self.destinations, clock, transport,
                                  outage=self.outage) if delivers else None)
        self.ingestor = Ingestor(settings, store, self.destinations, clock, notify=self._notify)

    def _notify(self, names: set[str]) -> None:
        # Without delivery here, the delivery processes find the rows through the store.
        if self.delivery is not None:
            self.delivery.notify(names)

    async def resume(self, name: str) -> bool:
        """Lift a destination's pause for every process: the workers read it from the store
        (at once in this process, within IDLE_POLL_S in the others). False: no such name."""
        if name not in {d.name for d in self.destinations}:
            return False
        await self.store.set_destination(DestinationState(name=name, paused=False,
                                                          updated_at=self.clock.now()))
        log.info("destination %s resume requested", name)
        self._notify({name})
        return True

    async def start(self) -> None:
        await self.store.open()
        if self.delivery is None:
            return
        try:
            await self.delivery.start()
        except BaseException:
            await self.store.close()  # nothing was delivered; the owner lock goes with it
            raise

    async def stop(self) -> None:
        if self.delivery is not None:
            await self.delivery.stop()
        await self.store.close()


def _guard() -> FailedCredentials:
    """One failed-credential budget, told which routes take which credential."""
    return FailedCredentials(kind_of=credential_kind, refuse=refusal)


def _edge_options(settings: Settings, limiter: FailedCredentials) -> dict[str, Any]:
    return {"body_timeout_s": settings.server.body_timeout_s,
            "trusted_proxies": settings.server.trusted_proxies, "limiter": limiter}


Endpoint = Callable[[Request], Awaitable[Response]]


class _HotRoutesApp(Starlette):
    """Starlette, with the ingest endpoints taken before its middleware stack and router,
    behind their own Edge (the same deadline, metrics and credential budget).

    Those layers cost about 70k instructions a request, a third of the HTTP layer of a
    single event (valgrind: 265k -> 195k). A hot route with a fixed path is found by one
    dict lookup; one with a pattern (Meta's /{version}/{pixel_id}/events) by its regex, which
    fills `path_params` as the router would. Any other method or path, or a request under a
    root_path, takes the routes as before. An error escaping an endpoint reaches the server
    as it does through Starlette's error middleware, which answers 500 and raises it again.
    """

    def __init__(self, *, hot: Sequence[tuple[Route, ASGIApp]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exact: dict[tuple[str, str], ASGIApp] = {}
        self.patterns: list[tuple[frozenset[str], re.Pattern[str], ASGIApp]] = []
        for route, app in hot:
            methods = frozenset(route.methods or ()) - {"HEAD"}
            if route.param_convertors:
                self.patterns.append((methods, route.path_regex, app))
            else:
                self.exact.update({(method, route.path): app for method in methods})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.exact.get((scope["method"], scope["path"]))
            if endpoint is None and self.patterns:
                endpoint = self._matching(scope)
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _matching(self, scope: Scope) -> ASGIApp | None:
        for methods, regex, app in self.patterns:
            if scope["method"] in methods and (found := regex.match(scope["path"])):
                scope["path_params"] = found.groupdict()
                return app
        return None


def _asgi(endpoint: Endpoint) -> ASGIApp:
    """A request/response endpoint as an ASGI app, without Starlette's per-route wrapping."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "version": __version__})


def create_app(settings: Settings, *, store: Store | None = None, clock: Clock | None = None,
               transport: httpx.AsyncBaseTransport | None = None,
               delivery: bool = True, alerts: bool = True) -> Starlette:
    """`serve`: the API, the dashboard and (unless `delivery=False`) the delivery workers;
    `alerts=False` leaves logging the alerts to another process (`serve --workers`).

    Without delivery the process does not own the database: on SQLite it takes no owner lock
    and returns no in-flight rows to the queue (they are the delivery process's).
    """
    clock = clock or SystemClock()
    store = store or open_store(settings.storage.url, recover_in_flight=delivery)
    gateway = Gateway(settings, store, clock, transport, delivers=delivery)
    diagnostics = Diagnostics(gateway.store, settings, clock, resume=gateway.resume,
                              outage=gateway.outage)

    def stored(endpoint: Endpoint) -> Endpoint:
        """A route that reaches the store: its failures are 503s (store_guard)."""
        return guarded(endpoint, gateway.outage, diagnostics.unavailable_page)

    routes: list[Route | Mount] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    # The ingest endpoints: their requests skip Starlette's layers (_HotRoutesApp). Bound
    # methods, here and below: Starlette would treat a callable instance as a raw ASGI app.
    hot_routes: list[Route] = [
        Route(EVENTS_PATH, stored(EventsEndpoint(gateway.ingestor, settings.sources).__call__),
              methods=["POST"]),
        Route(TRACK_PATH, stored(TikTokTrackEndpoint(gateway.ingestor, settings.sources,
                                                     settings.destinations).__call__),
              methods=["POST"]),
        GraphEventsRoute(stored(MetaEventsEndpoint(gateway.ingestor, settings.sources,
                                                   settings.destinations).__call__),
                         methods=["POST"]),
        Route(COLLECT_PATH,
              stored(CollectEndpoint(gateway.ingestor, gateway.store, settings).__call__),
              methods=["POST", "OPTIONS"]),
    ]
    routes += [
        Route("/v1/deliveries",
              stored(DeliveriesEndpoint(gateway.store, settings.server.admin_token,
                                        diagnostics.rejections).__call__),
              methods=["GET"]),
        Route("/v1/destinations/{name}/resume",
              stored(ResumeEndpoint(gateway.resume, settings.server.admin_token).__call__),
              methods=["POST"]),
        Route("/tag.js", TagEndpoint(settings).__call__, methods=["GET"]),
        Route("/v1/webhooks/shopify/{source}",
              stored(ShopifyWebhookEndpoint(gateway.ingestor, settings).__call__),
              methods=["POST"]),
    ]
    routes += [
        Route("/", stored(diagnostics.index), methods=["GET"]),
        Route("/login", diagnostics.login_form, methods=["GET"]),
        Route("/login", stored(diagnostics.login), methods=["POST"]),
        Route("/logout", stored(diagnostics.logout), methods=["POST"]),
        Route("/destinations/{name}/resume", stored(diagnostics.resume_form), methods=["POST"]),
        Route("/v1/diagnostics", stored(diagnostics.diagnostics_json), methods=["GET"]),
        Route("/v1/events/{event_id:path}/trace", stored(diagnostics.trace_endpoint),
              methods=["GET"]),
        Route("/metrics", stored(diagnostics.metrics_endpoint), methods=["GET"]),
    ]
    emulators: dict[str, Any] = {}
    if settings.sandbox:  # each destination type's emulator, where its api_url points
        from pixelrelay.emulator.sandbox import EMULATORS

        for kind, (path, make) in EMULATORS.items():
            mine = [d for d in settings.destinations if d.type == kind]
            if mine:
                emulators[kind] = make([d.access_token.reveal() for d in mine],
                                       [i for d in mine for i in REGISTRY[kind].emulator_ids(d)])
                routes.append(Mount(path, app=emulators[kind]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        stop_watch = asyncio.Event()
        watch = asyncio.create_task(diagnostics.watch(stop_watch), name="diagnostics-alerts"
                                    ) if alerts else None
        try:
            yield
        finally:
            stop_watch.set()
            if watch is not None:
                await watch
            await gateway.stop()

    # One failed-credential budget per address, whichever way its requests come in.
    edge = _edge_options(settings, _guard())
    hot = [(route, Edge(_asgi(route.endpoint), **edge)) for route in hot_routes]
    app = _HotRoutesApp(hot=hot, routes=[*hot_routes, *routes], lifespan=lifespan,
                        middleware=[Middleware(Edge, **edge)])
    app.state.gateway = gateway
    if "tiktok" in emulators:
        app.state.emulator = emulators["tiktok"].state.emulator
    if "meta" in emulators:
        app.state.meta_emulator = emulators["meta"].state.meta_emulator
    return app


def create_delivery_app(settings: Settings, *, store: Store | None = None,
                        clock: Clock | None = None,
                        transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """`deliver --port`: delivery as the lifespan, and only the probes over HTTP (/healthz,
    /metrics with this process's delivery counters and the queue gauges from the store)."""
    clock = clock or SystemClock()
    gateway = Gateway(settings, store or open_store(settings.storage.url), clock, transport)
    diagnostics = Diagnostics(gateway.store, settings, clock, outage=gateway.outage)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    metrics_route = guarded(diagnostics.metrics_endpoint, gateway.outage)
    app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"]),
                            Route("/metrics", metrics_route, methods=["GET"])],
                    lifespan=lifespan,
                    middleware=[Middleware(Edge, **_edge_options(settings, _guard()))])
    app.state.gateway = gateway
    return app
