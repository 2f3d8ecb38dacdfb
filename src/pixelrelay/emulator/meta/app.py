"""Starlette app exposing the Meta emulator: the Graph API events edge plus control endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from pixelrelay.emulator.control import faults_answer
from pixelrelay.emulator.meta.state import MetaEmulator

EVENTS_PATH = "/{api_version}/{pixel_id}/events"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _emulator(request: Request) -> MetaEmulator:
    emu: MetaEmulator = request.app.state.meta_emulator
    return emu


async def post_events(request: Request) -> Response:
    try:
        raw = await request.body()
    except ClientDisconnect:  # the sender went away mid-body: nothing to answer
        return Response(status_code=400)
    reply = await _emulator(request).handle_events(
        request.path_params["api_version"],
        request.path_params["pixel_id"],
        request.url.query,
        request.headers.get("authorization"),
        request.headers.get("content-type"),
        raw,
    )
    return Response(reply.body, status_code=reply.http_status, media_type=reply.content_type,
                    headers=reply.headers)


async def list_events(request: Request) -> Response:
    q = request.query_params
    return _json(_emulator(request).find_events(
        pixel_id=q.get("pixel_id"),
        event_name=q.get("event_name"),
        event_id=q.get("event_id"),
        test_event_code=q.get("test_event_code"),
    ))


async def stats(request: Request) -> Response:
    return _json(_emulator(request).stats())


async def list_requests(request: Request) -> Response:
    """Every events request and its answer (fbtrace_id, code, subcode, errors, notices,
    events received and recorded, duplicates), oldest first."""
    return _json([r.to_dict() for r in list(_emulator(request).requests)])


async def faults(request: Request) -> Response:
    return await faults_answer(request, _emulator(request).faults)


async def reset(request: Request) -> Response:
    _emulator(request).reset()
    return _json({"ok": True})


def create_meta_emulator_app(emulator: MetaEmulator | None = None) -> Starlette:
    """Build the app; `app.state.meta_emulator` is the MetaEmulator it serves."""
    app = Starlette(
        routes=[
            # Control routes first: none has the Graph shape /{version}/{id}/events.
            Route("/events", list_events, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/requests", list_requests, methods=["GET"]),
            Route("/faults", faults, methods=["GET", "POST"]),
            Route("/reset", reset, methods=["POST"]),
            Route(EVENTS_PATH, post_events, methods=["POST"]),
        ]
    )
    app.router.redirect_slashes = False
    app.state.meta_emulator = emulator if emulator is not None else MetaEmulator()
    return app


def accepting(access_tokens: Sequence[str], ids: Sequence[str]) -> Starlette:
    """The app of an emulator that accepts these tokens and pixel ids (empty: any), as the
    sandbox builds it (emulator.sandbox.EMULATORS)."""
    return create_meta_emulator_app(MetaEmulator(access_tokens=list(access_tokens),
                                                 pixel_ids=list(ids)))
