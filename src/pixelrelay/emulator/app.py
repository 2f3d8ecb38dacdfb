"""Starlette app exposing the emulator: TikTok's track endpoint plus loopback control endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from pixelrelay.emulator.control import faults_answer
from pixelrelay.emulator.state import Emulator

TRACK_PATH = "/open_api/v1.3/event/track/"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _emulator(request: Request) -> Emulator:
    emu: Emulator = request.app.state.emulator
    return emu


async def track(request: Request) -> Response:
    try:
        raw = await request.body()
    except ClientDisconnect:  # the sender went away mid-body (killed): nothing to answer
        return Response(status_code=400)
    reply = await _emulator(request).handle_track(
        request.headers.get("access-token"), request.headers.get("content-type"), raw
    )
    return Response(reply.body, status_code=reply.http_status, media_type=reply.content_type)


async def list_events(request: Request) -> Response:
    q = request.query_params
    events = _emulator(request).find_events(
        pixel_code=q.get("pixel_code"),
        event=q.get("event"),
        event_id=q.get("event_id"),
        test_event_code=q.get("test_event_code"),
    )
    return _json(events)


async def stats(request: Request) -> Response:
    return _json(_emulator(request).stats())


async def list_requests(request: Request) -> Response:
    """Every track request and its answer (request_id, code, events recorded, duplicates),
    oldest first: what a test compares with the gateway's own delivery log."""
    return _json([r.to_dict() for r in list(_emulator(request).requests)])


async def faults(request: Request) -> Response:
    return await faults_answer(request, _emulator(request).faults)


async def reset(request: Request) -> Response:
    _emulator(request).reset()
    return _json({"ok": True})


def create_emulator_app(emulator: Emulator | None = None) -> Starlette:
    """Build the app; `app.state.emulator` is the Emulator it serves (a fresh one by default)."""
    app = Starlette(
        routes=[
            Route(TRACK_PATH, track, methods=["POST"]),
            Route("/events", list_events, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/requests", list_requests, methods=["GET"]),
            Route("/faults", faults, methods=["GET", "POST"]),
            Route("/reset", reset, methods=["POST"]),
        ]
    )
    # TikTok answers 404 to a path without the trailing slash; a redirect would hide that bug.
    app.router.redirect_slashes = False
    app.state.emulator = emulator if emulator is not None else Emulator()
    return app


def accepting(access_tokens: Sequence[str], ids: Sequence[str]) -> Starlette:
    """The app of an emulator that accepts these tokens and pixel codes (empty: any), as the
    sandbox and `pixelrelay emulator` build it (emulator.sandbox.EMULATORS)."""
    return create_emulator_app(Emulator(access_tokens=list(access_tokens),
                                        pixel_codes=list(ids)))
