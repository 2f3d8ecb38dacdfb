"""Shopify webhooks, pure part: HMAC check, topic routing, order/checkout -> SPEC §3.3 events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import phonenumbers

from pixelrelay.errors import PixelrelayError
from pixelrelay.event_ids import checkout_event_id, order_event_id
from pixelrelay.names import snake_case
from pixelrelay.pipeline.clickid import landing_ids
from pixelrelay.pipeline.readers import json_type

ORDER_TOPICS = ("orders/create", "orders/paid")
CHECKOUT_TOPIC = "checkouts/create"
# Above 2**53 a float no longer holds every integer: an 18-digit id that went through a
# float is already wrong, and sending it would attach the event to someone else's order.
_MAX_EXACT_FLOAT = 2**53
# No shop sells more of one line; the bound keeps every sum of quantities far inside the
# 64-bit integers SQLite and the JSON encoder can hold.
MAX_QUANTITY = 2**31 - 1
_E164 = phonenumbers.PhoneNumberFormat.E164


class ShopifyPayloadError(PixelrelayError):
    """The webhook body cannot become an event; `reason` is safe to return to Shopify."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hmac_valid(body: bytes, secret: str, header: str | None) -> bool:
    """`header` == base64(HMAC-SHA256(raw body, secret)), compared in constant time."""
    if not secret or not header:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, header.strip().encode("ascii", "replace"))


def ignore_reason(topic: str, purchase_topic: str) -> str | None:
    """Why a webhook of `topic` produces no event, or None when it does."""
    if topic in ORDER_TOPICS:
        if topic != purchase_topic:
            # Both topics describe the same order; counting both would double the Purchase.
            return (f"topic {topic} is not this source's purchase_topic ({purchase_topic}); "
                    "the Purchase is sent from that topic only")
        return None
    if topic == CHECKOUT_TOPIC:
        return None
    return f"topic {topic or '(missing X-Shopify-Topic)'} is not mapped to an event"


def order_to_event(payload: object, topic: str, content_id: str, now: float, *,
                   dest_name: Callable[[str], str] = lambda name: name
                   ) -> dict[str, Any] | None:
    """The SPEC §3.3 event for an order or checkout webhook body; None for other topics.

    `dest_name` must be the mapping the ingestor derives event ids with, so that the id
    equals what the browser tag sends for the same order (TikTok deduplicates on it).
    Raises ShopifyPayloadError when the body has no usable id.
    """
    if topic in ORDER_TOPICS:
        name = "Purchase"
    elif topic == CHECKOUT_TOPIC:
        name = "InitiateCheckout"
    else:
        return None
    if not isinstance(payload, dict):
        raise ShopifyPayloadError("body must be a JSON object")
    snake = snake_case(dest_name(name))
    if name == "Purchase":
        ident = exact_id(payload.get("id"))
        if ident is None:
            raise ShopifyPayloadError("order has no usable id")
        event_id = order_event_id(ident, snake)
    else:
        # The token is what the pixel's checkout_started and the order's checkout_token share.
        token, number = _text(payload.get("token")), exact_id(payload.get("id"))
        ident = token or number
        if ident is None:
            raise ShopifyPayloadError("checkout has neither an id nor a token")
        event_id = checkout_event_id(ident, snake)
    stamp_keys = ("processed_at", "created_at") if topic == "orders/paid" else ("created_at",)
    event: dict[str, Any] = {
        "event": name,
        "event_id": event_id,
        "timestamp": _timestamp(payload, stamp_keys, now),
        "source": "web",
        # The order's creation stands in for the landing's click, which Shopify keeps no time of.
        "user": _user(payload, _timestamp(payload, ("created_at",), now)),
        "properties": _properties(payload, name, ident, content_id),
    }
    order_source = _text(payload.get("source_name"))
    if order_source is not None:
        event["order_source"] = order_source
    return event


def exact_id(v: object) -> str | None:
    """A Shopify id as its exact decimal string (ids are positive 18-digit integers)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v) if v > 0 else None
    if isinstance(v, float) and v.is_integer() and 0 < v < _MAX_EXACT_FLOAT:
        return str(int(v))
    if isinstance(v, str):
        # isascii: str.isdigit() also admits "²" and other scripts' digits.
        text = v.strip()
        return text if text.isascii() and text.isdigit() and text.strip("0") else None
    return None


def _text(v: object) -> str | None:
    if isinstance(v, str) and v.strip():
        return v.strip()
    return None


def _obj(v: object) -> dict[str, Any]:
    # Shopify sends null for an absent customer or address; treat it as empty.
    return v if isinstance(v, dict) else {}


def _timestamp(payload: dict[str, Any], keys: tuple[str, ...], now: float) -> int:
    for key in keys:
        raw = _text(payload.get(key))
        if raw is None:
            continue
        try:
            dt = datetime.fromisoformat(raw)
            return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())
        except (ValueError, OverflowError):  # not a date, or one outside what a clock holds
            continue
    return int(now)


def _user(payload: dict[str, Any], clicked_at: int) -> dict[str, Any]:
    customer = _obj(payload.get("customer"))
    billing = _obj(payload.get("billing_address"))
    shipping = _obj(payload.get("shipping_address"))
    client = _obj(payload.get("client_details"))
    home = _obj(customer.get("default_address"))
    user: dict[str, Any] = {}
    email = _first(payload.get("email"), payload.get("contact_email"), customer.get("email"))
    if email is not None:
        user["email"] = email
    # The order's own country is the best guess for a number typed without a country code.
    order_region = _region(billing) or _region(shipping) or _region(home)
    phone = _first_phone([
        (payload.get("phone"), order_region),
        (customer.get("phone"), _region(home) or order_region),
        (billing.get("phone"), _region(billing) or order_region),
        (shipping.get("phone"), _region(shipping) or order_region),
    ])
    if phone is not None:
        user["phone"] = phone
    customer_id = exact_id(customer.get("id"))
    if customer_id is not None:
        user["external_id"] = customer_id
    user.update(_click_ids(payload.get("landing_site"), clicked_at))
    ip = _ip(payload.get("browser_ip")) or _ip(client.get("browser_ip"))
    if ip is not None:
        user["ip"] = ip
    for key, value in (("user_agent", client.get("user_agent")),
                       ("locale", payload.get("customer_locale"))):
        text = _text(value)
        if text is not None:
            user[key] = text
    user.update(_address_keys(billing or shipping or home, customer))
    return user


def _address_keys(address: dict[str, Any], customer: dict[str, Any]) -> dict[str, str]:
    """Name, zip and place of the billing (else shipping, else the customer's) address: more
    match keys for TikTok, and the country is the order's consent region (README)."""
    out: dict[str, str] = {}
    for key, values in (("first_name", (address.get("first_name"), customer.get("first_name"))),
                        ("last_name", (address.get("last_name"), customer.get("last_name"))),
                        ("zip_code", (address.get("zip"),)),
                        ("city", (address.get("city"),)),
                        ("state", (address.get("province_code"), address.get("province"))),
                        ("country", (address.get("country_code"), address.get("country")))):
        text = _first(*values)
        if text is not None and len(text) <= 256:
            out[key] = text
    return out


def _first(*values: object) -> str | None:
    for v in values:
        text = _text(v)
        if text is not None:
            return text
    return None


def _region(address: dict[str, Any]) -> str | None:
    code = _text(address.get("country_code"))
    return code.upper() if code is not None and len(code) == 2 else None


def _first_phone(candidates: Iterable[tuple[object, str | None]]) -> str | None:
    """The first number valid in its address's region (else the first possible one), as
    E.164.

    Formatted here because the pipeline knows only one default region for all sources,
    while every Shopify order says which country its numbers belong to.
    """
    possible: str | None = None
    for raw, region in candidates:
        text = _text(raw)
        if text is None:
            continue
        try:
            number = phonenumbers.parse(text, None if text.startswith("+") else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return str(phonenumbers.format_number(number, _E164))
        # A possible number in a range phonenumbers does not know yet: the pipeline hashes
        # it and counts it as unverified, rather than the order losing its phone.
        if possible is None and phonenumbers.is_possible_number(number):
            possible = str(phonenumbers.format_number(number, _E164))
    return possible


def _ip(v: object) -> str | None:
    text = _text(v)
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None  # dropped rather than failing the whole purchase on a bad context field
    return None if address.is_unspecified else str(address)


def _click_ids(landing_site: object, clicked_at: int) -> dict[str, str]:
    """The declared ids of the landing URL, which may be absolute, a relative path, or null,
    as clicked at `clicked_at`: {user key: value}."""
    return landing_ids(_text(landing_site), clicked_at)


def _properties(payload: dict[str, Any], name: str, ident: str,
                content_key: str) -> dict[str, Any]:
    props: dict[str, Any] = {"content_type": "product"}
    value = payload.get("total_price")
    if value is not None:
        props["value"] = _number(value)
    currency = _text(payload.get("currency"))
    if currency is not None:
        props["currency"] = currency
    contents = [_content(item, i, content_key) for i, item in _line_items(payload)]
    if contents:
        props["contents"] = contents
        quantities = (c.get("quantity") for c in contents)
        props["num_items"] = sum(q for q in quantities if isinstance(q, int))
    if name == "Purchase":
        props["order_id"] = ident
        tokens = (("cart_token", payload.get("cart_token")),
                  ("checkout_token", payload.get("checkout_token")))
    else:
        tokens = (("cart_token", payload.get("cart_token")),
                  ("checkout_token", payload.get("token")))
    # Kept so that a later step can link the order to the browser session of its cart;
    # tokens identify a cart, not a person.
    for key, raw in tokens:
        token = _text(raw)
        if token is not None:
            props[key] = token
    return props


def _line_items(payload: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The line item objects with their index; entries that are not objects carry nothing."""
    items = payload.get("line_items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise ShopifyPayloadError(f"line_items must be an array, got {json_type(items)}")
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _content(item: dict[str, Any], index: int, content_key: str) -> dict[str, Any]:
    order = (content_key, *(k for k in ("variant_id", "product_id", "title")
                            if k != content_key))
    content: dict[str, Any] = {}
    for key in order:
        raw = item.get(key)
        cid = exact_id(raw) if key in ("variant_id", "product_id") else _text(raw)
        if cid is not None:
            content["content_id"] = cid
            break
    quantity = item.get("quantity")
    if isinstance(quantity, int | float) and not isinstance(quantity, bool) and not (
            0 <= quantity <= MAX_QUANTITY):
        raise ShopifyPayloadError(
            f"line_items.{index}.quantity must be an integer from 0 to {MAX_QUANTITY}")
    if quantity is not None:
        content["quantity"] = quantity  # any other type: validation names the field
    if item.get("price") is not None:
        content["price"] = _number(item["price"])
    title = _text(item.get("title"))
    if title is not None:
        content["content_name"] = title
    return content


def _number(v: object) -> object:
    """Shopify sends money as strings ("409.94"); anything else is handed on unchanged so
    that validation names the field instead of the value silently disappearing."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v
