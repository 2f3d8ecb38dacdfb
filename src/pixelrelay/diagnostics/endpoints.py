"""Starlette handlers: the page at `/`, login/logout, /v1/diagnostics, traces and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pixelrelay import metrics
from pixelrelay.bursts import BurstLog
from pixelrelay.clock import Clock
from pixelrelay.config import Settings
from pixelrelay.destinations import REGISTRY
from pixelrelay.diagnostics import page, report
from pixelrelay.errors import StoreUnavailable
from pixelrelay.model import Channel, DeliveryState
from pixelrelay.sources.shopify_pixel import custom_pixel
from pixelrelay.store.base import Store
from pixelrelay.store.rows import QueueRow, RecentSearch
from pixelrelay.web.admin_auth import admin_denied
from pixelrelay.web.credential_guard import credential_failed
from pixelrelay.web.http import (
    BodyTooLarge,
    came_over_https,
    json_response,
    problem_response,
    read_body,
)
from pixelrelay.web.store_guard import RETRY_AFTER, note_unavailable, unavailable

log = logging.getLogger("pixelrelay.diagnostics")
COOKIE = "pixelrelay_session"
SESSION_S = 12 * 3600
MAX_LOGIN_BYTES = 4096  # a form with one token field; read before anyone is authenticated
MAX_SESSION_ID = 128  # ours are 43 characters; a longer cookie is not worth a lookup
WATCH_EVERY_S = 60.0
ALERT_WINDOW = "1h"  # logged alerts describe the recent past, whatever window a viewer picked
# The 7 d report scans a week of events; reloads and concurrent viewers within a minute share it.
CACHE_S = {"1h": 0.0, "24h": 0.0, "7d": 60.0}
# No script runs on these pages: CSP forbids any, and inline styles are the only exception.
HTML_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "form-action 'self'; frame-ancestors 'none'",
                # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null"
                # with the page's own forms, and the Origin check needs the real one.
                "Referrer-Policy": "same-origin"}


def session_key(admin_token: str, session_id: str) -> str:
    """What the store keeps of a session: an HMAC of its id keyed with the admin token, so a
    copy of the database signs nobody in and a new token ends every session."""
    return hmac.new(admin_token.encode(), b"pixelrelay/admin-session\0" + session_id.encode(),
                    "sha256").hexdigest()


def csrf_token(admin_token: str, session_id: str) -> str:
    """The token the page's forms carry: bound to the session, unknowable without its id."""
    return hmac.new(admin_token.encode(), b"pixelrelay/csrf\0" + session_id.encode(),
                    "sha256").hexdigest()


class Diagnostics:
    """The diagnostics surfaces of one gateway, over the store's read models and ingest log."""

    def __init__(self, store: Store, settings: Settings, clock: Clock,
                 thresholds: report.Thresholds | None = None,
                 resume: Callable[[str], Awaitable[bool]] | None = None,
                 outage: BurstLog | None = None) -> None:
        self.store = store
        self.resume = resume
        self.settings = settings
        self.clock = clock
        self.thresholds = thresholds or report.Thresholds()
        self.names = [d.name for d in settings.destinations]
        self.facts = {d.name: report.facts_of(REGISTRY[d.type], REGISTRY[d.type].source_ids(d),
                                              test_events=bool(d.test_event_code))
                      for d in settings.destinations}
        self._alerts: set[str] = set()
        self.outage = outage or BurstLog(log, "storage")  # the process's (app.Gateway)
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._locks = {w: asyncio.Lock() for w in report.WINDOWS}

    # -- data ----------------------------------------------------------------------------------

    async def report(self, window: str) -> dict[str, Any]:
        async with self._locks[window]:
            cached = self._cache.get(window)
            if cached is not None and self.clock.now() - cached[0] < CACHE_S[window]:
                return cached[1]
            out = await self._compute(window)
            self._cache[window] = (out["generated_at"], out)
            return out

    async def _compute(self, window: str) -> dict[str, Any]:
        now = self.clock.now()
        since = now - report.WINDOWS[window]
        bucket = report.TREND_BUCKETS[window]
        rows = await self.store.window(since, bucket, self.names)
        out = report.build(rows, rows.queues, self.facts, window, now, self.thresholds)
        if window == ALERT_WINDOW:
            self._log_changes(out["alerts"])
        return out

    def _log_changes(self, found: list[dict[str, Any]]) -> None:
        alerts = [report.Alert(**a) for a in found]
        raised, cleared = report.alert_changes(self._alerts, alerts)
        for a in raised:
            log.warning("alert %s: %s. %s Check: %s", a.key, a.title, a.detail, a.check)
        for key in sorted(cleared):
            log.info("alert %s cleared", key)
        self._alerts = {a.key for a in alerts}

    async def watch(self, stop: asyncio.Event) -> None:
        """Evaluate the alerts every minute so they reach the log even if nobody looks."""
        while not stop.is_set():
            try:
                await self.report(ALERT_WINDOW)
                self.outage.recovered()
            except StoreUnavailable as exc:  # an outage: once, not a traceback a minute
                self.outage.failed(exc)
            except Exception:  # diagnostics must never take the gateway down
                log.exception("diagnostics alert check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_EVERY_S)

    async def trace(self, event_id: str) -> dict[str, Any]:
        rows = await self.store.trace(event_id)
        deliveries = []
        for r in rows:
            paused = await self.store.get_destination(r.destination)
            # A request refused for setup (a bad token) puts the event back unanswered: its
            # row has no code, the request that carried it has (40105).
            last = r.log[-1] if r.log else None
            deliveries.append({
                "destination": r.destination, "dest_event": r.dest_event, "state": r.state,
                # Requests made: a batch TikTok refused is split and sent again within one
                # attempt, and each of those requests carried this event.
                "attempts": max(r.attempts, len(r.log)),
                "destination_paused": paused is not None and paused.paused,
                "paused_reason": paused.reason if paused is not None and paused.paused
                else None,
                "last_code": r.last_code if r.last_code is not None or last is None
                else last.code,
                "last_message": r.last_message,
                "last_request_id": r.last_request_id if r.last_request_id is not None
                or last is None else last.request_id,
                "dead_reason": r.dead_reason, "reason": r.reason, "accepted_at": r.created_at,
                "delivered_at": r.delivered_at,
                "latency_s": None if r.delivered_at is None else r.delivered_at - r.created_at,
                "payload": None if r.payload is None else orjson.loads(r.payload),
                "log": [{"at": a.at, "http_status": a.http_status, "code": a.code,
                         "message": a.message, "request_id": a.request_id,
                         "latency_ms": a.latency_ms, "outcome": a.outcome,
                         "batch_size": a.batch_size} for a in r.log]})
        event = orjson.loads(rows[0].body) if rows else None
        later = await self.store.later_copies(event_id)
        copies = [] if event is None else [
            {"channel": event.get("channel", "server"), "at": event.get("received_at"),
             "outcome": "first"}]
        copies += [{"channel": c.channel, "at": c.at,
                    "outcome": "merged" if c.merged else "duplicate"} for c in later]
        return {"event_id": event_id, "event": event, "deliveries": deliveries,
                "copies": copies}

    async def rejections(self, event_id: str | None = None,
                         order_id: str | None = None) -> list[dict[str, Any]]:
        """Events refused at ingest under this event_id or order id, newest first."""
        return [asdict(r) for r in await self.store.rejections(event_id, order_id)]

    # -- auth ----------------------------------------------------------------------------------

    def _token(self) -> str:
        return self.settings.server.admin_token.reveal()

    async def _session(self, request: Request) -> str | None:
        """The request's open session id, if its cookie names one; raises StoreUnavailable."""
        cookie = request.cookies.get(COOKIE, "")
        if cookie and self._token() and len(cookie) <= MAX_SESSION_ID and \
                await self.store.admin_session_valid(session_key(self._token(), cookie),
                                                     self.clock.now()):
            return cookie
        return None

    async def _denied(self, request: Request) -> Response | None:
        """None for an open session or the admin token; the token is checked (and a wrong one
        counted) once per request. A store failure escapes: the route's guard answers 503."""
        if await self._session(request) is not None:
            return None
        return admin_denied(request, self.settings.server.admin_token)

    def _csrf(self, session_id: str) -> str:
        return csrf_token(self._token(), session_id)

    # -- handlers ------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        denied = await self._denied(request)
        if denied is not None:
            note = "" if self._token() else "Set server.admin_token to use the dashboard."
            return HTMLResponse(page.login_page(status_note=note), 401, headers=HTML_HEADERS)
        window = request.query_params.get("window", "24h")
        if window not in report.WINDOWS:
            window = "24h"
        search = self._search(request)
        if isinstance(search, str):
            return HTMLResponse(page.message_page("Search not run", search), 400,
                                headers=HTML_HEADERS)
        q = search.q
        r = await self.report(window)
        recent = await self.store.recent(search)
        refused = await self.rejections(q, q) if q else []
        session = await self._session(request)
        csrf = "" if session is None else self._csrf(session)
        return HTMLResponse(page.diagnostics_page(r, recent, search, refused, csrf,
                                                  self._pixels(request), self.facts),
                            headers=HTML_HEADERS)

    def _pixels(self, request: Request) -> list[tuple[str, str]]:
        """Each browser source's Shopify custom pixel, posting to the address this page was
        reached at (no setting names the gateway's public URL)."""
        base = str(request.base_url).rstrip("/")
        if base.startswith("http://") and came_over_https(
                request, self.settings.server.trusted_proxies):
            base = "https://" + base[len("http://"):]
        return [(s.name, custom_pixel(self.settings, s.name, base))
                for s in self.settings.sources if s.kind == "browser"]

    def _search(self, request: Request) -> RecentSearch | str:
        """The page's search from its query string, or what is wrong with it."""
        params = request.query_params
        chosen = {k: params.get(k, "").strip() for k in ("state", "destination", "channel")}
        allowed = {"state": [s.value for s in DeliveryState], "destination": self.names,
                   "channel": [c.value for c in Channel]}
        for key, value in chosen.items():
            if value and value not in allowed[key]:
                return f"{key}: {value[:64]!r} is not one of {', '.join(allowed[key])}"
        return RecentSearch(q=params.get("q", "").strip()[:256], **chosen)

    async def resume_form(self, request: Request) -> Response:
        """The page's Resume button. Acting needs the session and its CSRF token, and a
        browser's Origin (when it sends one) must be this site: the cookie is SameSite=Strict
        already, the token makes a forged form useless even where that is not honoured."""
        def refuse(status: int, why: str) -> Response:
            return HTMLResponse(page.message_page("Not resumed", why), status,
                                headers=HTML_HEADERS)

        if self.resume is None:
            return refuse(404, "This process does not deliver.")
        session = await self._session(request)  # a store failure: the guard's page
        if session is None:
            return refuse(403, "Sign in again: the session has ended.")
        origin = request.headers.get("origin")
        # "null" comes from pages that hide their origin (a sandboxed frame, no-referrer): no
        # proof either way, so the CSRF token alone decides.
        if origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get(
                "host"):
            return refuse(403, "The form came from another site.")
        try:
            raw = await read_body(request, MAX_LOGIN_BYTES)
        except BodyTooLarge:
            return refuse(413, "That form is larger than a Resume button.")
        given = (parse_qs(raw.decode("utf-8", "replace")).get("csrf") or [""])[0]
        if not hmac.compare_digest(given.encode(), self._csrf(session).encode()):
            return refuse(403, "The form is stale: reload the page and try again.")
        name = request.path_params["name"]
        known = await self.resume(name)
        if not known:
            return refuse(404, f"No destination is named {name!r}.")
        self._cache.clear()  # the next page shows the lifted pause in every window
        return RedirectResponse("/", 303)

    async def login_form(self, request: Request) -> Response:
        return HTMLResponse(page.login_page(), headers=HTML_HEADERS)

    async def login(self, request: Request) -> Response:
        try:
            raw = await read_body(request, MAX_LOGIN_BYTES)
        except BodyTooLarge:
            return HTMLResponse(page.login_page("That form is larger than a login."), 413,
                                headers={**HTML_HEADERS, "Connection": "close"})
        body = raw.decode("utf-8", "replace")
        given = (parse_qs(body).get("token") or [""])[0]
        token = self._token()
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            if token and given:
                credential_failed(request)
            return HTMLResponse(page.login_page("That is not the admin token."), 401,
                                headers=HTML_HEADERS)
        session_id = secrets.token_urlsafe(32)
        now = self.clock.now()
        try:
            await self.store.open_admin_session(session_key(token, session_id), now,
                                                   now + SESSION_S)
        except StoreUnavailable as exc:
            note_unavailable(request, exc)
            return HTMLResponse(page.login_page("The database is unavailable; try again."), 503,
                                headers={**HTML_HEADERS, **RETRY_AFTER})
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, session_id, max_age=SESSION_S, httponly=True,
                            samesite="strict", path="/",
                            secure=came_over_https(request, self.settings.server.trusted_proxies))
        return response

    async def logout(self, request: Request) -> Response:
        """Ends the session in the store (for every process), not only in this browser."""
        cookie = request.cookies.get(COOKIE, "")
        if cookie and self._token() and len(cookie) <= MAX_SESSION_ID:
            try:
                await self.store.close_admin_session(session_key(self._token(), cookie))
            except StoreUnavailable as exc:
                return unavailable(request, exc,
                                   "could not sign out: the database is unavailable")
        response = RedirectResponse("/", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def diagnostics_json(self, request: Request) -> Response:
        denied = await self._denied(request)
        if denied is not None:
            return denied
        window = request.query_params.get("window", "24h")
        if window not in report.WINDOWS:
            return problem_response(400, "bad_request",
                                    f"window must be one of {', '.join(report.WINDOWS)}")
        return json_response(await self.report(window))

    async def trace_endpoint(self, request: Request) -> Response:
        denied = await self._denied(request)
        if denied is not None:
            if "text/html" in request.headers.get("accept", ""):
                return HTMLResponse(page.login_page(), 401, headers=HTML_HEADERS)
            return denied
        t = await self.trace(request.path_params["event_id"])
        if "text/html" in request.headers.get("accept", ""):
            for d in t["deliveries"]:
                d["payload_text"] = None if d["payload"] is None else orjson.dumps(
                    d["payload"], option=orjson.OPT_INDENT_2).decode()
            t["event_text"] = None if t["event"] is None else orjson.dumps(
                t["event"], option=orjson.OPT_INDENT_2).decode()
            return HTMLResponse(page.trace_page(t), 200 if t["deliveries"] else 404,
                                headers=HTML_HEADERS)
        if not t["deliveries"]:
            return problem_response(404, "not_found", "no delivery of this event_id is known")
        return json_response(t)

    async def metrics_endpoint(self, request: Request) -> Response:
        """200 even when the database cannot be read: the process's own counters still go
        out (a 503 would make Prometheus drop them too), without the queue gauges."""
        try:
            queues: list[QueueRow] | None = await self.store.queues(self.names)
        except StoreUnavailable as exc:
            note_unavailable(request, exc)
            queues = None
        return Response(metrics.exposition(queues, self.clock.now()),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    def unavailable_page(self, request: Request) -> Response | None:
        """The 503 of the page's routes, and of an API route asked for HTML, when the store
        fails (store_guard); None: the API's JSON."""
        if request.url.path.startswith(("/v1/", "/open_api/")) and \
                "text/html" not in request.headers.get("accept", ""):
            return None
        return HTMLResponse(page.message_page(
            "Storage unavailable", "The database cannot be reached just now, so nothing was "
            "read or changed. Try again in a few seconds."), 503,
            headers={**HTML_HEADERS, **RETRY_AFTER})
