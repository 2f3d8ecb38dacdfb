"""Event <-> bytes for the events table: orjson, lossless for every field of `Event`."""

from __future__ import annotations

from typing import Any

import orjson

from pixelrelay.model import Channel, Consent, ConsentState, Event, Page, Source, User


def encode_event(event: Event) -> bytes:
    # A literal dict is about twice as fast as orjson's own dataclass path, and ingest pays
    # this once per event.
    e, u, c = event, event.user, event.consent
    return orjson.dumps({
        "name": e.name, "event_id": e.event_id, "event_time": e.event_time, "source": e.source,
        "user": {"email": u.email, "phone": u.phone, "external_id": u.external_id,
                 "ttclid": u.ttclid, "ttp": u.ttp, "ip": u.ip, "user_agent": u.user_agent,
                 "locale": u.locale},
        "page": {"url": e.page.url, "referrer": e.page.referrer},
        "properties": e.properties,
        "consent": {"marketing": c.marketing, "ad_user_data": c.ad_user_data,
                    "ad_personalization": c.ad_personalization, "region": c.region},
        "session_id": e.session_id, "order_source": e.order_source,
        "received_at": e.received_at, "warnings": e.warnings,
        "channel": e.channel, "enriched_from": e.enriched_from,
    })


def decode_event(data: bytes) -> Event:
    d: dict[str, Any] = orjson.loads(data)
    u: dict[str, Any] = d.get("user") or {}
    p: dict[str, Any] = d.get("page") or {}
    c: dict[str, Any] = d.get("consent") or {}
    return Event(
        name=d["name"],
        event_id=d["event_id"],
        event_time=d["event_time"],
        source=Source(d.get("source", Source.WEB)),
        user=User(
            email=tuple(u.get("email", ())),
            phone=tuple(u.get("phone", ())),
            external_id=tuple(u.get("external_id", ())),
            ttclid=u.get("ttclid"),
            ttp=u.get("ttp"),
            ip=u.get("ip"),
            user_agent=u.get("user_agent"),
            locale=u.get("locale"),
        ),
        page=Page(url=p.get("url"), referrer=p.get("referrer")),
        properties=d.get("properties") or {},
        consent=Consent(
            marketing=_consent(c.get("marketing")),
            ad_user_data=_consent(c.get("ad_user_data")),
            ad_personalization=_consent(c.get("ad_personalization")),
            region=c.get("region"),
        ),
        session_id=d.get("session_id"),
        order_source=d.get("order_source"),
        received_at=float(d.get("received_at", 0.0)),
        warnings=tuple(d.get("warnings", ())),
        channel=Channel(d.get("channel", Channel.SERVER)),
        enriched_from=d.get("enriched_from"),
    )


def _consent(value: str | None) -> ConsentState | None:
    return None if value is None else ConsentState(value)
