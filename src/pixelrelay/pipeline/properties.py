"""Validate an event's `properties` (value, currency, contents, ids); custom keys pass through."""

from __future__ import annotations

from typing import Any

from pixelrelay.errors import Problem
from pixelrelay.model import JSON
from pixelrelay.pipeline.gid import plain_id
from pixelrelay.pipeline.readers import amount, count, id_str, is_blank, json_type, opt_str, text

# Active ISO 4217 codes, without funds, precious metals and test codes, which no shop charges in.
_ISO_4217 = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG
SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD
UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL"""
CURRENCIES = frozenset(_ISO_4217.split())
CONTENT_TYPES = ("product", "product_group")
MAX_CONTENTS = 1000
_CONTENT_TEXT = ("content_name", "content_category", "brand")


def parse_properties(v: object, p: list[Problem]) -> JSON:
    """Check the keys TikTok interprets; custom keys pass through unchanged.

    Blank values (null, "", [], {}) are "not given": TikTok refuses nulls in typed fields,
    and senders such as Segment send "" and [] for every field they have no value for.
    """
    if is_blank(v):
        return {}
    if not isinstance(v, dict):
        p.append(Problem("properties", f"must be an object, got {json_type(v)}"))
        return {}
    out: JSON = {}
    for key, val in v.items():
        if is_blank(val):
            continue
        path = f"properties.{key}"
        new: Any
        if key == "value":
            new = amount(val, path, p)
        elif key == "currency":
            new = val.strip().upper() if isinstance(val, str) else None
            if new not in CURRENCIES:
                p.append(Problem(path, "must be an ISO 4217 currency code such as EUR or USD"))
        elif key == "contents":
            new = _contents(val, path, p)
        elif key == "content_type":
            new = val.strip() if isinstance(val, str) and val.strip() in CONTENT_TYPES else None
            if new is None:
                p.append(Problem(path, "must be product or product_group"))
        elif key in ("order_id", "shop_id"):
            new = id_str(val, path, p, cap=128)
            if new is not None:
                new = plain_id(new)  # a Shopify pixel's gid://shopify/OrderIdentity/N
        elif key in ("cart_token", "checkout_token"):
            new = plain_id(val) if isinstance(val, str) else val
        elif key == "content_ids":
            new = _ids(val, path, p)
        elif key == "num_items":
            new = count(val, path, p)
        elif key in ("query", "search_string"):
            new = opt_str(val, path, 1000, p)
        elif key == "description":
            new = text(val, path, p)
        else:
            new = val
        if new is not None:
            out[key] = new
    # search_string is the 2.0 name; query is kept because the Pixel and older readers use it.
    if "query" in out and "search_string" not in out:
        out["search_string"] = out["query"]
    return out


def _ids(v: object, path: str, p: list[Problem]) -> list[str] | None:
    items = v if isinstance(v, list) else [v]
    out: list[str] = []
    for i, x in enumerate(items):
        ipath = f"{path}.{i}" if isinstance(v, list) else path
        if is_blank(x):
            continue
        if (s := id_str(x, ipath, p)) is not None:
            out.append(s)
    return out or None


def _contents(v: object, path: str, p: list[Problem]) -> list[JSON] | None:
    if isinstance(v, dict):
        v = [v]  # one item sent as an object: RudderStack accepts it the same way
    if not isinstance(v, list):
        p.append(Problem(path, f"must be an array of objects, got {json_type(v)}"))
        return None
    if len(v) > MAX_CONTENTS:
        p.append(Problem(path, f"has more than {MAX_CONTENTS} items"))
        return None
    out: list[JSON] = []
    for i, item in enumerate(v):
        ipath = f"{path}.{i}"
        if is_blank(item):
            continue
        if not isinstance(item, dict):
            p.append(Problem(ipath, f"must be an object, got {json_type(item)}"))
            continue
        content: JSON = {}
        for key, val in item.items():
            if is_blank(val):
                continue
            new: Any = val
            if key == "content_id":
                new = id_str(val, f"{ipath}.content_id", p)
            elif key == "quantity":
                new = count(val, f"{ipath}.quantity", p)
            elif key == "price":
                new = amount(val, f"{ipath}.price", p)
            elif key in _CONTENT_TEXT:
                new = text(val, f"{ipath}.{key}", p, cap=500)
            if new is not None:
                content[key] = new
        if content:
            out.append(content)
    return out or None
