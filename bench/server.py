"""The server under test for bench/ingest.py: pixelrelay plus a bare JSON-parsing ASGI endpoint.

Both run in one uvicorn process, so the comparison is on the same server in the same run.
Delivery is paused on purpose (the mounted emulator answers 40105) so ingest is measured alone.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import orjson
import uvicorn

from pixelrelay.app import create_app
from pixelrelay.config import (
    Secret,
    Settings,
    SourceSettings,
    StorageSettings,
)
from pixelrelay.destinations.meta.settings import meta_destination
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from pixelrelay.emulator import Emulator, create_emulator_app
from pixelrelay.emulator.meta import MetaEmulator, create_meta_emulator_app
from pixelrelay.ingest import IngestResult
from pixelrelay.serving import collect_garbage_less_often
from pixelrelay.store.base import InsertOutcome

KEY = "bench-key"
PIXEL = "BENCHPIXEL00001"


async def bare_json(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    orjson.loads(body)
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"14")]})
    await send({"type": "http.response.body", "body": b'{"accepted":1}'})


def build(storage_url: str, port: int, without: str = "", meta: bool = False) -> Any:
    emulator = Emulator()
    emulator.faults.setup_error_code = 40105
    destinations = [tiktok_destination(name="tiktok", pixel_code=PIXEL,
                                       access_token=Secret("bench-token"),
                                       api_url=f"http://127.0.0.1:{port}/_emu")]
    if meta:  # a second destination, hashing its own way; its emulator refuses the token
        destinations.append(meta_destination(name="meta", access_token=Secret("bench-meta"),
                                             pixel_id="123456789012345",
                                             api_url=f"http://127.0.0.1:{port}/_meta"))
    settings = Settings(
        storage=StorageSettings(url=storage_url),
        sources=(SourceSettings(name="bench", kind="server", key=Secret(KEY)),),
        destinations=tuple(destinations),
    )
    gateway = create_app(dataclasses.replace(settings))
    if without:
        _leave_out(gateway.state.gateway, without)
    emulator_app = create_emulator_app(emulator)
    # As for TikTok: the token is refused, so the destination pauses and ingest is measured alone.
    meta_app = create_meta_emulator_app(MetaEmulator(access_tokens=["not-the-bench-token"],
                                                     pixel_ids=["123456789012345"]))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == "/bare":
            await bare_json(scope, receive, send)
        elif scope["type"] == "http" and path.startswith("/_emu"):
            scope = {**scope, "path": path[len("/_emu"):], "root_path": "/_emu"}
            await emulator_app(scope, receive, send)
        elif scope["type"] == "http" and path.startswith("/_meta"):
            scope = {**scope, "path": path[len("/_meta"):], "root_path": "/_meta"}
            await meta_app(scope, receive, send)
        else:
            await gateway(scope, receive, send)

    return app


def _leave_out(gateway: Any, part: str) -> None:
    """For bench.ingest's "where the time goes": the same server with a part replaced by an
    answer it would give, so the difference is that part's cost per request."""
    if part == "ingest":  # the HTTP layer alone: auth, body, JSON, envelope, the answer
        async def accept(raw_events: Any, **_: Any) -> IngestResult:
            return IngestResult(accepted=len(raw_events),
                                event_ids=[str(e.get("event_id")) for e in raw_events])

        gateway.ingestor.accept = accept
    elif part == "store":  # everything but the writes (and their wait for the writer)
        async def insert(batch: Any, now: float, ingest_log: Any = None) -> list[InsertOutcome]:
            return [InsertOutcome.ACCEPTED] * len(batch)

        gateway.store.insert = insert
    else:
        raise SystemExit(f"--without: ingest or store, not {part!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="storage url: sqlite:///... or "
                        "postgresql://...")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--without", choices=("ingest", "store"),
                        help="replace ingest, or only the store's writes, by their answer")
    parser.add_argument("--meta", action="store_true",
                        help="a Meta destination beside TikTok's (its cost at ingest)")
    args = parser.parse_args()
    collect_garbage_less_often()  # as `pixelrelay serve` does
    uvicorn.run(build(args.url, args.port, args.without or "", args.meta), host="127.0.0.1",
                port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
