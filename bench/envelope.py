"""What a compiled envelope (issue 29, point 2) could win, measured before it is built: one
event body of bench.ingest's, each with an email and a phone of its own, through

- today's path: orjson.loads, then parse_event (types, blanks, lengths and enums checked in
  Python; the personal keys normalised and hashed; free text scrubbed; the Event built);
- msgspec decoding the same bytes into typed Structs (types, lengths and enums checked in C);
- those Structs plus only what must stay in Python whatever decodes the body (personal-data
  checks, normalise and hash, scrub, build the Event): the bound on what point 2 saves. It
  handles this body's fields only and checks that its Event equals parse_event's, so the
  bound is honest;
- with `--mypyc`, parse_event from a copy of the package whose pipeline modules mypyc has
  compiled to C (gcc and the Python headers needed; about 15 s to build).

    python -m bench.envelope [--events 20000] [--mypyc]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import orjson

from bench.ingest_phases import bodies as phases_bodies
from pixelrelay.model import Consent, ConsentState, Event, Page, Source, User, click_ids_of
from pixelrelay.pipeline.gid import plain_id
from pixelrelay.pipeline.normalize import hash_email, hash_external_id, hash_phone
from pixelrelay.pipeline.parse import _clicked as clicked
from pixelrelay.pipeline.parse import _scrub_user_text as scrub_user_text
from pixelrelay.pipeline.parse import parse_event
from pixelrelay.pipeline.pii import (
    Found,
    looks_like_email,
    looks_personal,
    scrub_properties,
    scrub_url,
)

COMPILED = ("parse", "user", "properties", "pii", "readers", "normalize", "e164")


Text3 = Annotated[str, msgspec.Meta(max_length=3)]
Text35 = Annotated[str, msgspec.Meta(max_length=35)]
Text64 = Annotated[str, msgspec.Meta(max_length=64)]
Text100 = Annotated[str, msgspec.Meta(max_length=100)]
Text256 = Annotated[str, msgspec.Meta(max_length=256)]
Text500 = Annotated[str, msgspec.Meta(max_length=500)]


class UserIn(msgspec.Struct):
    email: str | list[str] | None = None
    phone: str | list[str] | None = None
    external_id: str | list[str] | None = None
    ttclid: Text500 | None = None
    ttp: Text500 | None = None
    ip: Text64 | None = None
    user_agent: str | None = None
    locale: Text35 | None = None


class PageIn(msgspec.Struct):
    url: str | None = None
    referrer: str | None = None


class ContentIn(msgspec.Struct):
    content_id: str | None = None
    quantity: int | float | None = None
    price: int | float | None = None


class PropertiesIn(msgspec.Struct):
    value: int | float | str | None = None
    currency: Text3 | None = None
    order_id: str | int | None = None
    content_type: str | None = None
    contents: list[ContentIn] | None = None


State = Literal["granted", "denied"] | bool | None


class ConsentIn(msgspec.Struct):
    marketing: State = None
    ad_user_data: State = None
    ad_personalization: State = None


class EventIn(msgspec.Struct):
    event: Text100
    event_id: Text256 | int | None = None
    timestamp: int | float | str | None = None
    source: Literal["web", "app", "offline", "crm"] | None = None
    user: UserIn | None = None
    page: PageIn | None = None
    properties: PropertiesIn | None = None
    consent: ConsentIn | None = None


DECODER = msgspec.json.Decoder(EventIn)


TAGS = itertools.count()


def bodies(count: int) -> list[bytes]:
    """New emails and phones at every call: the normalisers' caches must not answer."""
    return phases_bodies(count, f"e{next(TAGS)}")


def what_stays(body: bytes, now: float) -> Event:
    """The Structs, then what Python must still do for this body's fields whatever decodes
    it: the personal-data checks of the name and the event_id, normalising and hashing the
    match keys, the scrubbing of free text and ids, a click id from the page URL, the
    currency's case and the order id's form, and building the Event."""
    e = DECODER.decode(body)
    u, page, props, c = e.user, e.page, e.properties, e.consent
    assert u is not None and page is not None and props is not None and c is not None
    assert isinstance(u.email, str) and isinstance(u.phone, str) and props.currency
    assert isinstance(u.external_id, str) and u.ip is not None and props.contents
    assert not looks_personal(e.event) and not looks_like_email(str(e.event_id))
    found = Found()
    phone = hash_phone(u.phone, "")
    user = User(email=(hash_email(u.email) or "",), phone=(phone[0],) if phone else (),
                external_id=(hash_external_id(u.external_id) or "",), ip=u.ip,
                user_agent=u.user_agent, locale=u.locale,
                click_ids=click_ids_of({"ttclid": u.ttclid or "", "ttp": u.ttp or ""}))
    url = scrub_url(page.url, "page.url", found)
    properties = scrub_properties({
        "value": props.value, "currency": props.currency.strip().upper(),
        "order_id": plain_id(str(props.order_id)), "content_type": props.content_type,
        "contents": [{"content_id": x.content_id, "quantity": x.quantity, "price": x.price}
                     for x in props.contents]}, found)
    event_time = int(float(e.timestamp or now))
    return Event(
        name=e.event, event_id=plain_id(str(e.event_id)), event_time=event_time,
        source=Source(e.source or "web"),
        user=clicked(scrub_user_text(user, found, ""), url, None, event_time),
        page=Page(url=url, referrer=scrub_url(page.referrer, "page.referrer", found)),
        properties=properties,
        consent=Consent(marketing=ConsentState(str(c.marketing)),
                        ad_user_data=ConsentState(str(c.ad_user_data)),
                        ad_personalization=ConsentState(str(c.ad_personalization))),
        received_at=now)


def today(body: bytes, now: float) -> Event | None:
    return parse_event(orjson.loads(body), now=now, nul_free=True).event


def per_event(fn: Callable[[bytes], object], items: list[bytes]) -> float:
    started = time.perf_counter()
    for body in items:
        fn(body)
    return (time.perf_counter() - started) / len(items) * 1e6


def compiled_parse(events: int) -> float | None:
    """µs per event of today's path with the pipeline compiled by mypyc, in a subprocess."""
    src = Path(__file__).resolve().parents[1] / "src"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(src / "pixelrelay", Path(tmp) / "pixelrelay")
        built = subprocess.run(
            [sys.executable, "-m", "mypyc", *(f"pixelrelay/pipeline/{m}.py" for m in COMPILED)],
            cwd=tmp, capture_output=True, text=True)
        if built.returncode != 0:
            print("mypyc failed:", built.stderr[-2000:] or built.stdout[-2000:])
            return None
        run = subprocess.run(
            [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
             "from bench.envelope import measure_today; print(measure_today(int(sys.argv[2])))",
             tmp, str(events)], capture_output=True, text=True,
            cwd=Path(__file__).resolve().parents[1])
        if run.returncode != 0:
            print("compiled run failed:", run.stderr[-2000:])
            return None
        return float(run.stdout.split()[-1])


def measure_today(events: int) -> float:
    now = time.time()
    items = bodies(events)
    per_event(lambda b: today(b, now), items[: events // 10])  # warm-up
    return per_event(lambda b: today(b, now), bodies(events))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--mypyc", action="store_true")
    args = parser.parse_args()
    now = time.time()
    sample = bodies(1)[0]
    if what_stays(sample, now) != today(sample, now):
        raise SystemExit("the bound's Event differs from parse_event's: fix what_stays")
    rows: list[tuple[str, float]] = []
    for name, fn in (("orjson.loads", orjson.loads),
                     ("msgspec into typed Structs (checks in C)", DECODER.decode),
                     ("today: orjson.loads + parse_event", lambda b: today(b, now)),
                     ("Structs + what stays in Python (bound)", lambda b: what_stays(b, now))):
        per_event(fn, bodies(args.events // 10))  # warm-up; every measure has new numbers
        rows.append((name, per_event(fn, bodies(args.events))))
    if args.mypyc:
        compiled = compiled_parse(args.events)
        if compiled is not None:
            rows.append(("today, pipeline compiled by mypyc", compiled))
    print(f"\ndecoding and parsing one event, µs (each with an email and a phone of its own; "
          f"{args.events} events a measure)")
    for name, us in rows:
        print(f"{name:<44}{us:>8.1f}")


if __name__ == "__main__":
    main()
