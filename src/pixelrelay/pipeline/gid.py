"""Shopify's global ids as the plain ids its webhooks use: the Customer Events pixel reports
`gid://shopify/OrderIdentity/5633837583468` and `gid://shopify/Cart/<token>?key=…` where the
`orders/create` webhook says `5633837583468` and `cart_token: <token>`; every copy of an
order must derive one event_id from them."""

from __future__ import annotations

import re

_PREFIX = "gid://shopify/"
# gid://shopify/<Type>/<id>[?query]: the id is digits or a token (no "/", "?" or "_").
_GID = re.compile(r"gid://shopify/[A-Za-z]+/([A-Za-z0-9-]+)(?:\?[^\s_/]*)?")


def plain_id(value: str) -> str:
    """`value` with any Shopify global id in it replaced by its bare id (the whole value, or
    inside an event_id such as `ord_gid://shopify/OrderIdentity/5633837583468_…`)."""
    if _PREFIX not in value:
        return value  # nearly every id: one substring test
    return _GID.sub(r"\1", value)
