"""Hypothesis strategies for hostile input: any JSON, Shopify-shaped orders, header sets."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# No example database: the suite leaves no files behind and each run explores afresh;
# a failure prints the example (and the seed to reproduce it). PIXELRELAY_FUZZ_EXAMPLES=5000
# digs deeper locally; the suite's default keeps the fuzz module well under a minute.
FUZZ = settings(database=None, deadline=None,
                max_examples=int(os.environ.get("PIXELRELAY_FUZZ_EXAMPLES", "100")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Text JSON can carry without escapes trouble: no lone surrogates (raw bodies cover those).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
# For query strings and path segments: control characters, NUL, dots and escapes included.
wild_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=80) | st.sampled_from(
    ["", "..", "%00", "%zz", "1h", "24h", "7d", "a/b", "\x00", "ord_1"])
numbers = (st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                              1e300, -0.0, 0.5]))
scalars = st.none() | st.booleans() | numbers | text
_nested = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(text, inner, max_size=4), max_leaves=12)


def deep(levels: int, pattern: list[str], key: str, leaf: object) -> Any:
    """`levels` containers, one inside the other: objects under `key` and arrays, in the
    order `pattern` repeats."""
    doc = leaf
    for i in range(levels):
        doc = {key: doc} if pattern[i % len(pattern)] == "{" else [doc]
    return doc


# Nesting around the 32-level limit (pipeline.nesting) and far past it, up to orjson's 1,024.
deep_values = st.builds(deep, st.integers(24, 40) | st.integers(41, 1100),
                        st.lists(st.sampled_from("{["), min_size=1, max_size=3), text,
                        scalars)
# Any JSON value. The scalars again up front: left to itself, st.recursive mostly draws
# containers, and a number where an array belongs is exactly the kind of input wanted here.
# A deep value one time in eight: enough to reach every field, rare enough that most
# examples still get past the decoder to the checks behind it.
json_values = st.integers(0, 7).flatmap(lambda n: deep_values if n == 0 else scalars | _nested)


def dumps(doc: object) -> bytes:
    """JSON bytes for any value, integers past 64 bits and nesting past orjson's 254 levels
    included (orjson writes neither). json's encoder recurses once a level, so the limit is
    raised while it writes (and only then: the gateway runs in this process)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 5000))
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False)
    finally:
        sys.setrecursionlimit(limit)
    return text.encode("utf-8", "surrogatepass")


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` three times in four: the odd value must not stop every example at the first
    check (an unusable order id ends the mapping before line items are looked at)."""
    return st.one_of(usual, usual, usual, odd)


good_ids = st.integers(1, 2**63 - 1) | st.integers(1, 10**6).map(str)
ids = mostly(good_ids, st.integers(-(2**66), 2**66) | numbers
             | st.text("0123456789", min_size=1, max_size=25) | json_values)
money = mostly(st.sampled_from(["409.94", "0.00", "12"]), st.sampled_from(
    ["-1", "1e400", "nan", "1,000.00", "€5"]) | numbers | json_values)
timestamps = st.sampled_from(["2026-04-23T11:23:00+02:00", "0001-01-01T00:00:00+14:00",
                              "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00", "now"]
                             ) | json_values
addresses = st.fixed_dictionaries({}, optional={
    "phone": st.sampled_from(["(213) 373-4253", "+4930901820", "+" + "9" * 300]) | json_values,
    "country_code": st.sampled_from(["US", "DE", "ZZ", "ß", "u"]) | json_values}) | json_values
line_item = mostly(st.fixed_dictionaries({}, optional={
    "sku": json_values, "variant_id": ids, "product_id": ids, "title": json_values,
    "quantity": mostly(st.integers(0, 10), numbers | json_values), "price": money}),
    json_values)
urls = st.sampled_from(["/?ttclid=E.C.P.x", "http://[::1/?ttclid=x", "https://a.example/?" +
                        "ttclid=" + "x" * 600, "%zz", "//[v1.x]/"]) | json_values
ips = st.sampled_from(["203.0.113.7", "0.0.0.0", "::", "2001:db8::1", "999.1.1.1"]) | json_values

shopify_orders: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries({
    "id": ids, "line_items": mostly(st.lists(line_item, max_size=4), json_values)}, optional={
    "token": json_values, "email": json_values, "contact_email": json_values,
    "phone": addresses, "created_at": timestamps, "processed_at": timestamps,
    "total_price": money, "currency": st.sampled_from(["USD", "usd", "XXX"]) | json_values,
    "customer": st.fixed_dictionaries({}, optional={
        "id": ids, "email": json_values, "phone": json_values,
        "default_address": addresses}) | json_values,
    "billing_address": addresses, "shipping_address": addresses,
    "client_details": st.fixed_dictionaries({}, optional={
        "browser_ip": ips, "user_agent": json_values}) | json_values,
    "landing_site": urls, "browser_ip": ips, "customer_locale": json_values,
    "source_name": json_values, "cart_token": json_values, "checkout_token": json_values,
})

# Header names are tokens; values are visible latin-1 (what HTTP can carry at all). Framing
# headers are the transport's: a wrong Content-Length would only make the client wait.
FRAMING = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade",
           "te", "trailer", "keep-alive"}
header_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1,
                       max_size=20).filter(lambda n: n not in FRAMING)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                      exclude_characters="\x7f"), max_size=60).map(str.strip)
interesting_headers = st.sampled_from([
    "authorization", "x-admin-token", "access-token", "x-pixelrelay-key", "origin", "cookie",
    "x-forwarded-for", "x-forwarded-proto", "content-type", "accept", "if-none-match",
    "x-shopify-topic", "x-shopify-hmac-sha256", "x-shopify-webhook-id", "user-agent"])
headers = st.dictionaries(interesting_headers | header_names, header_values, max_size=6)

# SPEC §3.3 events: the known keys with plausible and hostile values side by side.
event_names = st.sampled_from(["Purchase", "ViewContent", "AddToCart", "PageView", "purchase",
                               "", " ", "X" * 101]) | json_values
users = st.fixed_dictionaries({}, optional={
    "email": st.sampled_from(["a@example.com", "not-an-email", ""]) | json_values,
    "phone": st.sampled_from(["+4917012345678", "12", "+" + "1" * 40]) | json_values,
    "external_id": json_values, "ttclid": json_values, "ttp": json_values, "ip": ips,
    "user_agent": json_values, "locale": json_values}) | json_values
events = st.fixed_dictionaries({}, optional={
    "event": event_names, "event_id": ids, "timestamp": numbers | timestamps,
    "source": st.sampled_from(["web", "app", "CRM", "tv"]) | json_values,
    "session_id": st.sampled_from(["s_" + "0" * 32, "s_x"]) | json_values,
    "order_source": json_values, "user": users,
    "page": st.fixed_dictionaries({}, optional={"url": urls, "referrer": urls}) | json_values,
    "properties": st.fixed_dictionaries({}, optional={
        "value": money, "currency": st.sampled_from(["EUR", "eur", "EURO"]) | json_values,
        "contents": st.lists(line_item | st.fixed_dictionaries({}, optional={
            "content_id": ids, "quantity": numbers, "price": money}), max_size=3)
        | json_values,
        "num_items": numbers, "order_id": ids, "content_type": json_values,
        "content_ids": json_values, "query": json_values}) | json_values,
    "consent": st.fixed_dictionaries({}, optional={
        "marketing": st.sampled_from(["granted", "denied", "maybe"]) | json_values,
        "ad_personalization": json_values, "region": json_values}) | json_values,
}) | json_values
