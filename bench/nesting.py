"""What the nesting limit costs on the hot path: orjson.loads against nesting.loads (the same
decode plus the depth check every JSON body now passes) for the bodies senders send. Prints
a table of microseconds per body (best of --repeat runs).

    python -m bench.nesting [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from pixelrelay.pipeline import nesting

EVENT: dict[str, Any] = {"event": "Purchase", "event_id": "ord_1", "timestamp": 1760000000,
         "user": {"email": "a@example.com", "phone": "+4917012345678", "external_id": "u1",
                  "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
         "page": {"url": "https://shop.example/checkout?x=1",
                  "referrer": "https://shop.example/"},
         "properties": {"value": 129.95, "currency": "EUR", "order_id": "1",
                        "content_type": "product",
                        "contents": [{"content_id": "sku-1", "quantity": 1, "price": 99.95},
                                     {"content_id": "sku-2", "quantity": 2, "price": 15.0}]},
         "consent": {"marketing": "granted"}}
MANY_CONTENTS = {**EVENT, "properties": {**EVENT["properties"], "contents": [
    {"content_id": f"s{i}", "quantity": 1, "price": 1.0} for i in range(40)]}}


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bodies = [("one event", orjson.dumps(EVENT)),
              ("one event, 40 contents", orjson.dumps(MANY_CONTENTS)),
              ("500 events", orjson.dumps({"events": [EVENT] * 500}))]
    print(f"{'body':24} {'bytes':>8} {'orjson.loads':>13} {'nesting.loads':>14} {'added':>9}")
    for name, body in bodies:
        number = 20000 if len(body) < 10000 else 200
        bare = best_us(functools.partial(orjson.loads, body), number, args.repeat)
        checked = best_us(functools.partial(nesting.loads, body), number, args.repeat)
        print(f"{name:24} {len(body):8} {bare:11.2f}us {checked:12.2f}us {checked - bare:7.2f}us")


if __name__ == "__main__":
    main()
