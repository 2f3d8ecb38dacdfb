"""Validate the per-source parts of an event: `app` and `ad` (app events), `lead` (CRM
events) and `device` (client hints), in TikTok's own shape."""

from __future__ import annotations

from pixelrelay.errors import Notice, Problem
from pixelrelay.model import JSON, Ad, App, Lead
from pixelrelay.pipeline.readers import (
    NUMBER,
    boolean,
    id_str,
    is_blank,
    json_type,
    opt_str,
    unknown_keys,
)

APP_KEYS = frozenset({"app_id", "app_name", "app_version"})
AD_KEYS = frozenset({"callback", "campaign_id", "ad_id", "creative_id", "is_retargeting",
                     "attributed", "attribution_type", "attribution_provider"})
LEAD_KEYS = frozenset({"lead_id", "lead_event_source"})
MAX_DEVICE_KEYS = 32


def _object(v: object, path: str, p: list[Problem]) -> dict[str, object] | None:
    if is_blank(v):
        return None
    if not isinstance(v, dict):
        p.append(Problem(path, f"must be an object, got {json_type(v)}"))
        return None
    return v


def parse_app(v: object, p: list[Problem], notices: list[Notice]) -> App | None:
    obj = _object(v, "app", p)
    if obj is None:
        return None
    unknown_keys(obj, "app.", APP_KEYS, notices)
    app_id = id_str(obj.get("app_id"), "app.app_id", p)
    name = opt_str(obj.get("app_name"), "app.app_name", 256, p, truncate=True)
    version = id_str(obj.get("app_version"), "app.app_version", p, cap=64)
    if app_id is None:
        if name is not None or version is not None:
            p.append(Problem("app.app_id", "is required when app is given (the App Store id "
                                           "or the Google Play package name)"))
        return None
    return App(app_id=app_id, app_name=name, app_version=version)


def parse_ad(v: object, p: list[Problem], notices: list[Notice]) -> Ad | None:
    obj = _object(v, "ad", p)
    if obj is None:
        return None
    unknown_keys(obj, "ad.", AD_KEYS, notices)
    ad = Ad(
        callback=opt_str(obj.get("callback"), "ad.callback", 1024, p),
        campaign_id=id_str(obj.get("campaign_id"), "ad.campaign_id", p),
        ad_id=id_str(obj.get("ad_id"), "ad.ad_id", p),
        creative_id=id_str(obj.get("creative_id"), "ad.creative_id", p),
        is_retargeting=boolean(obj.get("is_retargeting"), "ad.is_retargeting", p),
        attributed=boolean(obj.get("attributed"), "ad.attributed", p),
        attribution_type=opt_str(obj.get("attribution_type"), "ad.attribution_type", 64, p),
        attribution_provider=opt_str(obj.get("attribution_provider"), "ad.attribution_provider",
                                     128, p),
    )
    return None if ad == Ad() else ad


def parse_lead(v: object, p: list[Problem], notices: list[Notice]) -> Lead | None:
    obj = _object(v, "lead", p)
    if obj is None:
        return None
    unknown_keys(obj, "lead.", LEAD_KEYS, notices)
    lead_id = id_str(obj.get("lead_id"), "lead.lead_id", p)
    source = opt_str(obj.get("lead_event_source"), "lead.lead_event_source", 128, p)
    if lead_id is None:
        if source is not None:
            p.append(Problem("lead.lead_id", "is required when lead is given"))
        return None
    return Lead(lead_id=lead_id, lead_event_source=source)


def parse_device(v: object, p: list[Problem]) -> JSON:
    """Client hints (architecture, model, platform, mobile...): strings, booleans, numbers
    or lists of strings, passed on as given; nothing here identifies a person."""
    obj = _object(v, "device", p)
    if obj is None:
        return {}
    if len(obj) > MAX_DEVICE_KEYS:
        p.append(Problem("device", f"has more than {MAX_DEVICE_KEYS} keys"))
        return {}
    out: JSON = {}
    for key, val in obj.items():
        path = f"device.{str(key)[:64]}"
        if is_blank(val):
            continue
        if isinstance(val, NUMBER):  # bool is an int too
            out[key] = val
        elif isinstance(val, str):
            out[key] = val.strip()[:256]
        elif isinstance(val, list) and all(isinstance(x, str) for x in val) and len(val) <= 32:
            out[key] = [x[:256] for x in val]
        else:
            p.append(Problem(path, f"must be a string, number, boolean or list of strings, "
                                   f"got {json_type(val)}"))
    return out
