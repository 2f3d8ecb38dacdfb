"""The derived event_id rules, in one place: every copy of an order (the browser tag, the
Shopify pixel and webhook, a backend, an import) must derive the same id from the same order,
because that id is what each ad platform deduplicates on."""

from __future__ import annotations

ORDER_PREFIX = "ord_"
# The name part of a purchase's id with the default names: what tags, backends and the Python
# client already derive (ord_1001_complete_payment), so it stays, whatever the destinations.
PURCHASE_ID_NAME = "complete_payment"
CHECKOUT_PREFIX = "chk_"


def order_event_id(order_id: str, snake_name: str) -> str:
    """`ord_<order id>_<snake_case event name>`: ord_1001_complete_payment."""
    return f"{ORDER_PREFIX}{order_id}_{snake_name}"


def checkout_event_id(checkout_token: str, snake_name: str) -> str:
    """`chk_<checkout token>_<snake_case event name>`: a checkout is not yet an order, and its
    token (not its id) is what the Shopify pixel's checkout and the webhook share."""
    return f"{CHECKOUT_PREFIX}{checkout_token}_{snake_name}"


def order_of(event_id: str, snake_names: tuple[str, ...]) -> str | None:
    """The order id an `ord_` event_id was derived from with one of `snake_names`."""
    if not event_id.startswith(ORDER_PREFIX):
        return None
    for name in snake_names:
        tail = f"_{name}"
        if event_id.endswith(tail) and len(event_id) > len(ORDER_PREFIX) + len(tail):
            return event_id[len(ORDER_PREFIX):-len(tail)]
    return None
