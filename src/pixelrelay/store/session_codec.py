"""A session's consent answer and its click ids <-> the JSON both dialects store them as."""

from __future__ import annotations

import orjson

from pixelrelay.model import Consent, ConsentState
from pixelrelay.pipeline.enrich import SessionContext


def consent_to_text(c: SessionContext) -> str | None:
    if c.consent is None:
        return None
    return orjson.dumps({
        "marketing": c.consent.marketing, "ad_user_data": c.consent.ad_user_data,
        "ad_personalization": c.consent.ad_personalization, "region": c.consent.region,
        "at": c.consent_at, "source": c.consent_source}).decode()


def consent_from_text(text: str | None) -> tuple[Consent | None, float | None, str | None]:
    if not text:
        return None, None, None
    d = orjson.loads(text)

    def state(key: str) -> ConsentState | None:
        return None if d.get(key) is None else ConsentState(d[key])

    return (Consent(marketing=state("marketing"), ad_user_data=state("ad_user_data"),
                    ad_personalization=state("ad_personalization"), region=d.get("region")),
            d.get("at"), d.get("source"))


def click_ids_to_text(c: SessionContext) -> str | None:
    return orjson.dumps(c.click_ids).decode() if c.click_ids else None


def click_ids_from(value: object) -> dict[str, str]:
    """The stored map: JSON text (SQLite) or the decoded jsonb (PostgreSQL); only string
    values count."""
    if isinstance(value, (str, bytes)):
        value = orjson.loads(value) if value else None
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
