"""`pixelrelay check --send-test`: one ViewContent to each destination's Test Events, never prod."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from pixelrelay import __version__
from pixelrelay.clock import Clock, SystemClock
from pixelrelay.config import DestinationSettings, Settings
from pixelrelay.delivery.sender import Sender
from pixelrelay.destinations import build_destination
from pixelrelay.destinations.base import OutcomeKind
from pixelrelay.model import DeliveryState, Event, Source, User
from pixelrelay.ops import OpsError
from pixelrelay.pipeline.normalize import hash_external_id
from pixelrelay.routing import route as route_event

TEST_EVENT_ID = "pixelrelay-send-test"
TEST_EVENT = "ViewContent"
REFUSAL = ("no test_event_code: not sent, a test event must never reach production; copy the "
           "code from TikTok Events Manager > your pixel > Test Events into test_event_code")


@dataclass(frozen=True, slots=True)
class SendResult:
    destination: str
    test_event_code: str
    sent: bool
    ok: bool
    http_status: int | None = None
    code: int | None = None
    message: str = ""
    request_id: str | None = None


def plan(settings: Settings, only: str | None, test_event_code: str | None = None,
         ) -> list[tuple[DestinationSettings, str | None]]:
    """Each destination to consider and why it must be refused (None: send).

    `test_event_code` (--test-event-code) probes a production destination in Test Events
    without editing its config; a code belongs to one pixel, so it needs one destination.
    """
    dests = list(settings.destinations)
    if only is not None:
        dests = [d for d in dests if d.name == only]
        if not dests:
            raise OpsError("--destination", f"no destination named {only!r}")
    if test_event_code is not None:
        if not test_event_code.strip():
            raise OpsError("--test-event-code", "is empty")
        if len(dests) != 1:
            raise OpsError("--test-event-code", "a Test Events code belongs to one pixel: name "
                                                "the destination with --destination")
        dests = [dataclasses.replace(dests[0], test_event_code=test_event_code.strip())]
    return [(d, None if d.test_event_code.strip() else REFUSAL) for d in dests]


def probe_event(now: float) -> Event:
    """A fixed id, so repeated checks within 48 h count once even in Test Events."""
    user = User(external_id=(hash_external_id(TEST_EVENT_ID) or "",),
                user_agent=f"pixelrelay/{__version__} check --send-test")
    return Event(name=TEST_EVENT, event_id=TEST_EVENT_ID, event_time=int(now),
                 source=Source.WEB, user=user, received_at=now,
                 properties={"content_type": "product", "content_id": TEST_EVENT_ID})


async def send_tests(settings: Settings, only: str | None, clock: Clock, sender: Sender,
                     test_event_code: str | None = None) -> list[SendResult]:
    results: list[SendResult] = []
    for d, refusal in plan(settings, only, test_event_code):
        if refusal is not None:
            results.append(SendResult(d.name, "", sent=False, ok=False, message=refusal))
            continue
        # The check is about credentials and the pixel, so the destination's event filters
        # must not stop the one test event; everything else is the real request path.
        dest = build_destination(dataclasses.replace(d, events=("*",), exclude_events=(),
                                                     exclude_order_sources=()))
        now = clock.now()
        route = route_event(dest, probe_event(now))
        if route.state is not DeliveryState.PENDING or route.payload is None:
            results.append(SendResult(d.name, d.test_event_code, sent=False, ok=False,
                                      message=route.reason or f"not sendable ({route.state})"))
            continue
        response = await sender.send(dest.build_request(route.batch_key, [route.payload]))
        outcome = dest.classify(response)
        results.append(SendResult(
            d.name, d.test_event_code, sent=True, ok=outcome.kind is OutcomeKind.DELIVERED,
            http_status=response.status, code=outcome.code,
            message=outcome.message or response.error or "", request_id=outcome.request_id))
    return results


def main(settings: Settings, only: str | None, console: Console | None = None,
         clock: Clock | None = None, test_event_code: str | None = None) -> int:
    """0 when at least one test went out and every one sent was accepted; else 1."""
    console = console or Console()
    results = asyncio.run(_run(settings, only, clock or SystemClock(), test_event_code))
    render(console, results)
    sent = [r for r in results if r.sent]
    return 0 if sent and all(r.ok for r in sent) else 1


async def _run(settings: Settings, only: str | None, clock: Clock,
               test_event_code: str | None) -> list[SendResult]:
    sender = Sender(settings.delivery)
    try:
        return await send_tests(settings, only, clock, sender, test_event_code)
    finally:
        await sender.close()


def render(console: Console, results: list[SendResult]) -> None:
    table = Table(title=f"test event ({TEST_EVENT}, event_id {TEST_EVENT_ID})")
    for col in ("destination", "test_event_code", "result", "http", "code", "message",
                "request_id"):
        table.add_column(col, overflow="fold")
    for r in results:
        result = "refused" if not r.sent else ("OK" if r.ok else "FAILED")
        table.add_row(r.destination, r.test_event_code or "-", result,
                      "" if r.http_status is None else str(r.http_status),
                      "" if r.code is None else str(r.code), r.message, r.request_id or "")
    console.print(table)
    # Plain lines as well: scripts grep them, and a narrow terminal folds the table.
    for r in results:
        if r.sent:
            console.print(f"{r.destination}: code={r.code} message={r.message!r} "
                          f"request_id={r.request_id}", soft_wrap=True)
        else:
            console.print(f"{r.destination}: refused: {r.message}", soft_wrap=True)
