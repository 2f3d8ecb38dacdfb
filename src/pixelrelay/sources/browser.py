"""The browser source: GET /tag.js, POST /v1/collect (with its CORS preflight), session cookies."""

from __future__ import annotations

import logging
from dataclasses import replace
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.config import Settings, SourceSettings
from pixelrelay.delivery.throttle import TokenBucket
from pixelrelay.destinations.plugin import BrowserHit
from pixelrelay.errors import StoreUnavailable
from pixelrelay.ingest import Ingestor
from pixelrelay.model import Channel, Consent, ConsentState
from pixelrelay.pipeline.clickid import MAX_CLICK_ID
from pixelrelay.pipeline.enrich import TOKEN_KINDS, SessionContext
from pixelrelay.pipeline.gid import plain_id
from pixelrelay.pipeline.pii import Found, scrub_id, scrub_text, scrub_url
from pixelrelay.pipeline.readers import NUL
from pixelrelay.recorder import record_collect_refusal
from pixelrelay.sources import browser_rules as rules
from pixelrelay.sources.keys import find_source, rate_limited, source_limits
from pixelrelay.store.base import Sessions
from pixelrelay.web import addresses
from pixelrelay.web.credential_guard import credential_failed
from pixelrelay.web.http import json_response, problem_response, read_json
from pixelrelay.web.store_guard import NOT_COMMITTED, unavailable

log = logging.getLogger(__name__)
MAX_COLLECT_BYTES = 64 * 1024  # what a keepalive fetch / sendBeacon may carry
MAX_URL = 2048
MAX_UA = 1024  # what the parser keeps of a user agent
REFUSAL_WRITES_PER_S = 5.0
REFUSAL_WRITES_BURST = 50.0
_TEMPLATE = (resources.files("pixelrelay.sources") / "static" / "tag.js").read_text("utf-8")


class TagEndpoint:
    """GET /tag.js[?k=<site key>]: the tag core with the bridges of the configured
    destination types, their name tables and the source's consent and page-view defaults
    embedded; revalidated by ETag, so a mapping change shows up within the max-age."""

    def __init__(self, settings: Settings) -> None:
        dests = settings.destinations
        self.sources = settings.sources
        template = rules.with_bridges(_TEMPLATE, dests)
        self.default = rules.render_tag(template, rules.tag_config(dests))
        self.by_source = {
            s.name: rules.render_tag(template, rules.tag_config(
                dests, consent_required=s.consent_required, page_views=s.page_views))
            for s in settings.sources if s.kind == "browser"}

    async def __call__(self, request: Request) -> Response:
        source = find_source(self.sources, "browser", request.query_params.get("k"))
        body, etag = self.default if source is None else self.by_source[source.name]
        headers = {"ETag": etag, "Cache-Control": "public, max-age=3600",
                   "X-Content-Type-Options": "nosniff"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type="application/javascript")


class CollectEndpoint:
    """POST /v1/collect: one tag hit -> session context + cookies -> (event ingest | link).

    The tag posts text/plain with the site key in the body (`k`), a CORS "simple request"
    that needs no preflight and so survives page unload with keepalive/sendBeacon; a key in
    X-Pixelrelay-Key (preflighted) works as well.
    """

    def __init__(self, ingestor: Ingestor, sessions: Sessions, settings: Settings) -> None:
        self.ingestor = ingestor
        self.sessions = sessions
        self.sources = settings.sources
        self.trusted = settings.server.trusted_proxies
        self.limits = source_limits(settings.sources)
        self.cfg = settings.sessions
        # The configured destination types that keep click and browser ids with sessions.
        self.id_hooks = rules.session_id_hooks(settings.destinations)
        # The registered types' ids kept by their declaration (a landing click id...).
        self.declared = rules.declared_session_ids()
        # Nothing older than the longest cookie or identity window can be restored any more.
        self.retention_s = 86400.0 * max(self.cfg.click_id_cookie_days,
                                         self.cfg.session_cookie_days,
                                         self.cfg.identity_window_days)
        self.browser_origins = {o.rstrip("/") for s in settings.sources if s.kind == "browser"
                                for o in s.allowed_origins}
        self.any_origin = any(s.kind == "browser" and not s.allowed_origins
                              for s in settings.sources)
        # Refused hits from an origin not allowed are stored at most this fast; beyond it
        # they are only counted in /metrics (a foreign site's traffic cannot load the store).
        self.refusal_writes = TokenBucket(REFUSAL_WRITES_PER_S, REFUSAL_WRITES_BURST)

    async def __call__(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._preflight(request)
        origin = request.headers.get("origin")
        # The body's NUL hint is not passed on: a hit adds strings from outside the body
        # (the session's click id from a landing URL, cookies), so each event keeps its check.
        doc, _, refused = await read_json(request, MAX_COLLECT_BYTES)
        if refused is not None:
            return refused
        if not isinstance(doc, dict):
            return problem_response(400, "malformed_envelope", "body must be a JSON object")
        key = request.headers.get("x-pixelrelay-key") or doc.pop("k", None)
        doc.pop("k", None)
        source = find_source(self.sources, "browser", key if isinstance(key, str) else None)
        if source is None:
            await record_collect_refusal(self.ingestor.store, self.ingestor.clock.now(),
                                         "unknown_key", origin)
            credential_failed(request)
            return problem_response(401, "unauthorized", "unknown site key")
        site = rules.hit_origin(origin, doc.pop("origin", None),
                                _obj(doc.get("page")).get("url"))
        if not rules.origin_allowed(site, source.allowed_origins):
            # Not a guessed credential: the key was right, and the shopper's address (a
            # sandboxed pixel, a stale allow-list) must not be locked out of the key's other
            # hits. What bounds the refusals' writes is a budget of this process's own.
            shown = (site if origin != rules.OPAQUE_ORIGIN
                     else f"null, naming {site or 'no site'}")
            await record_collect_refusal(self.ingestor.store, self.ingestor.clock.now(),
                                         "origin_not_allowed", shown,
                                         write=self.refusal_writes.try_take() == 0)
            return problem_response(403, "forbidden", f"origin {shown!r} is not allowed")
        refused = rate_limited(self.limits, source, 1)
        if refused is not None:
            return refused
        cors = rules.cors_headers(origin)
        sandboxed = origin == rules.OPAQUE_ORIGIN
        link = doc.pop("link", None)
        hint = doc.pop("sid", None)
        try:
            answer, cookies = await self._hit(request, source, doc, link,
                                              hint if isinstance(hint, str) else None)
        except StoreUnavailable as exc:
            return _with(unavailable(request, exc, NOT_COMMITTED), cors, [])
        if isinstance(answer, Response):
            return _with(answer, cors, [])
        # A sandbox's request omits credentials, so a cookie would not be kept: its state
        # lives in the shop's own cookies, which it reads and sends in the body.
        return _with(json_response(answer, 202), cors, [] if sandboxed else cookies)

    async def _hit(self, request: Request, source: SourceSettings, doc: dict[str, Any],
                   link: object, hint: str | None) -> tuple[dict[str, Any] | Response, list[str]]:
        tokens = _tokens(link)
        if isinstance(tokens, str):
            return problem_response(400, "malformed_link", tokens), []
        # An identity claimed here (`identify`) is not linked to the session: anyone can
        # claim anyone's email with the public key (README, "Whose session is whose").
        doc.pop("identify", None)
        consent, how = rules.hit_consent(doc.get("consent"), doc.pop("consent_source", None))
        now = self.ingestor.clock.now()
        if consent is not None and consent.marketing is ConsentState.DENIED:
            return await self._denied(request, doc, tokens, hint, consent, how, now), []
        if source.consent_required and (consent is None
                                        or consent.marketing is not ConsentState.GRANTED):
            # Not answered yet: no cookie, no session, no link. An event still goes in,
            # marked denied, so it is kept as suppressed and never forwarded (SPEC §2.4).
            if "event" not in doc:
                return {"accepted": 0, "linked": [], "reason": "consent required"}, []
            doc["consent"] = {**_obj(doc.get("consent")), "marketing": "denied"}
            result = await self.ingestor.accept([doc], channel=Channel.BROWSER)
            return result.as_dict(), []
        ctx = self._context(request, doc, hint, now, consent, how)
        ctx = replace(ctx, click_ids={**ctx.click_ids,
                                      **await self._click_ids(request, doc, ctx, now)})
        ctx = await self.sessions.record_session(ctx, self.retention_s)
        for kind, token in tokens:
            await self.sessions.link_token(kind, token, ctx.session_id, now)
        answer: dict[str, Any] = {"session_id": ctx.session_id}
        if tokens:
            answer["linked"] = [kind for kind, _ in tokens]
        if "event" in doc:
            doc["session_id"] = ctx.session_id
            user = doc.setdefault("user", {})
            if isinstance(user, dict):
                # The hit's own context, as the event's own data (not "restored"): what the
                # connection shows wins over what a page script claims.
                user.pop("ip", None)
                user.pop("user_agent", None)
                user.update({k: v for k, v in (("ip", ctx.ip), ("user_agent", ctx.user_agent))
                             if v is not None})
                for param in self.id_hooks.click_params:  # became the session's ids
                    user.pop(param, None)
                user.update(ctx.click_ids)
            result = await self.ingestor.accept([doc], channel=Channel.BROWSER, context=ctx)
            answer.update(result.as_dict())
        return answer, self._cookies(request, ctx)

    async def _denied(self, request: Request, doc: dict[str, Any],
                      tokens: list[tuple[str, str]], hint: str | None, consent: Consent,
                      how: str, now: float) -> dict[str, Any]:
        """A visitor who said no: the answer is recorded against the session and its cart
        tokens, so that an order reported later by Shopify or the backend carries it too;
        nothing else of the visitor is kept (no click id, IP or user agent) and no cookie
        is set."""
        sid = rules.choose_session_id(request.cookies.get(rules.SESSION_COOKIE), hint)
        await self.sessions.record_session(SessionContext(
            session_id=sid, first_seen=now, last_seen=now, consent=consent, consent_at=now,
            consent_source=how), self.retention_s)
        for kind, token in tokens:
            await self.sessions.link_token(kind, token, sid, now)
        answer: dict[str, Any] = {"session_id": sid, "consent": "denied"}
        if tokens:
            answer["linked"] = [kind for kind, _ in tokens]
        if "event" in doc:  # an older tag: kept as suppressed, without the visitor's context
            doc["session_id"] = sid
            answer.update((await self.ingestor.accept([doc], channel=Channel.BROWSER)).as_dict())
        return answer

    def _context(self, request: Request, doc: dict[str, Any], hint: str | None,
                 now: float, consent: Consent | None, how: str) -> SessionContext:
        page, user = _obj(doc.get("page")), _obj(doc.get("user"))
        url, referrer = _str(page.get("url")), _str(page.get("referrer"))
        sid = rules.choose_session_id(request.cookies.get(rules.SESSION_COOKIE), hint)
        peer = request.client.host if request.client else None
        # The session row is stored as it is: it gets the same scrubber as an event's fields.
        found = Found()
        landing = scrub_url(url[:MAX_URL], "page.url", found) if url else None
        agent = scrub_text((_str(request.headers.get("user-agent")) or "")[:MAX_UA] or None,
                           "user_agent", found)
        ids = {key: kept for key, value in rules.ids_from_hit(
                   self.declared, url, referrer, request.cookies, user).items()
               if (kept := scrub_id(value, key, found)) is not None}
        ctx = SessionContext(
            session_id=sid,
            click_ids=ids,
            ip=addresses.client_ip(peer, request.headers.get("x-forwarded-for"), self.trusted),
            user_agent=agent,
            landing_url=landing,
            first_seen=now, last_seen=now, consent=consent,
            consent_at=None if consent is None else now,
            consent_source=None if consent is None else how)
        return ctx

    async def _click_ids(self, request: Request, doc: dict[str, Any], ctx: SessionContext,
                         now: float) -> dict[str, str]:
        """The ids the configured destination types keep with the session (Plugin.
        session_ids), each as scrubbed as the session's other fields. The session's own are
        read only for a landing with a click id, which may be the one it already holds."""
        if not self.id_hooks.hooks:
            return {}
        page, user = _obj(doc.get("page")), _obj(doc.get("user"))
        url, referrer = _str(page.get("url")), _str(page.get("referrer"))
        previous: dict[str, str] = {}
        if url is not None and rules.has_click_param(url, self.id_hooks.click_params):
            known = await self.sessions.get_session(ctx.session_id)
            previous = known.click_ids if known is not None else {}
        hit = BrowserHit(url=url, referrer=referrer, cookies=request.cookies, user=user,
                         now_ms=int(now * 1000), previous=previous)
        found = Found()
        out: dict[str, str] = {}
        for hook in self.id_hooks.hooks:
            for key, value in hook(hit).items():
                kept = scrub_id(value, f"user.{key}", found)
                if kept is not None and len(kept) <= MAX_CLICK_ID:
                    out[key] = kept
        return out

    def _cookies(self, request: Request, ctx: SessionContext) -> list[str]:
        peer = request.client.host if request.client else None
        secure = request.url.scheme == "https" or (
            addresses.peer_is_trusted(peer, self.trusted)
            and request.headers.get("x-forwarded-proto", "").lower() == "https")
        domain = self.cfg.cookie_domain
        # Re-set on every hit: the session lifetime counts from the last activity.
        cookies = [rules.build_cookie(rules.SESSION_COOKIE, ctx.session_id,
                                      self.cfg.session_cookie_days * 86400,
                                      secure=secure, domain=domain)]
        for spec in self.declared.clicks:
            assert spec.url_param is not None
            name, value = rules.click_cookie(spec.url_param), ctx.click_ids.get(spec.key)
            if value and rules.cookie_value_ok(value) and value != request.cookies.get(name):
                # Only when it changes: the click's window runs from the ad click.
                cookies.append(rules.build_cookie(name, value,
                                                  self.cfg.click_id_cookie_days * 86400,
                                                  secure=secure, domain=domain))
        return cookies

    def _preflight(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if not origin:
            return problem_response(400, "bad_preflight", "a preflight needs an Origin")
        if not self.any_origin and origin.rstrip("/") not in self.browser_origins:
            return problem_response(403, "forbidden", f"origin {origin!r} is not allowed")
        return Response(status_code=204, headers=rules.preflight_headers(origin))


def _with(response: Response, headers: dict[str, str], cookies: list[str]) -> Response:
    response.headers.update(headers)
    for cookie in cookies:
        response.headers.append("set-cookie", cookie)
    return response


def _obj(v: object) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: object) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None




def _tokens(link: object) -> list[tuple[str, str]] | str:
    """The (kind, token) pairs of a `link` call, or why it is malformed."""
    if link is None:
        return []
    if not isinstance(link, dict) or not link or not set(link) <= set(TOKEN_KINDS):
        return f"link must be an object with {' and/or '.join(TOKEN_KINDS)}"
    out = []
    for kind, token in link.items():
        if not isinstance(token, str) or not 0 < len(token.strip()) <= 256 or NUL in token:
            return (f"link.{kind} must be a non-empty string of at most 256 characters "
                    "without NUL")
        out.append((kind, plain_id(token.strip())))  # a pixel's gid://shopify/Cart/T?key=…
    return out
