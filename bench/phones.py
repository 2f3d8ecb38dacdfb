"""What a new customer's phone costs: hash_phone for 10,000 distinct numbers, cache cold, with
the fast path (pipeline/e164.py) and through phonenumbers alone (as before it), in E.164 and
as forms write them (spaces, dashes, parentheses). Prints
microseconds per number (best of --repeat runs), and the one-off cost of compiling every
calling code's metadata.

    python -m bench.phones [--repeat 5] [--count 10000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import phonenumbers

from pixelrelay.pipeline import e164, normalize

_E164 = phonenumbers.PhoneNumberFormat.E164


def _numbers(count: int, kind: str, rng: random.Random) -> list[str]:
    """Distinct E.164 numbers: phonenumbers' example numbers with random last digits."""
    if kind == "DE mobile":
        seeds = ["+4917012345678"]
    elif kind == "US":
        seeds = ["+12133734253"]
    else:  # every region's example numbers of every type
        seeds = []
        for region in sorted(phonenumbers.SUPPORTED_REGIONS):
            for t in phonenumbers.PhoneNumberType.values():
                ex = phonenumbers.example_number_for_type(region, t)
                if ex is not None:
                    seeds.append(phonenumbers.format_number(ex, _E164))
    found: set[str] = set()
    while len(found) < count:
        seed = rng.choice(seeds)
        found.add(seed[:-4] + f"{rng.randrange(10_000):04d}")
    return sorted(found)


@contextmanager
def _slow_only() -> Iterator[None]:
    saved = normalize.e164_fast
    setattr(normalize, "e164_fast", lambda s: e164.DECLINE)  # noqa: B010
    try:
        yield
    finally:
        setattr(normalize, "e164_fast", saved)  # noqa: B010


def _cold_us(numbers: list[str], repeat: int, fn: Callable[[str, str], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        normalize._hash_phone.cache_clear()
        normalize._e164.cache_clear()
        start = time.perf_counter()
        for n in numbers:
            fn(n, "")
        best = min(best, time.perf_counter() - start)
    return best / len(numbers) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(29)

    start = time.perf_counter()
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        e164._code(code)
    compile_ms = (time.perf_counter() - start) * 1e3

    head = "numbers (distinct, cache cold)"
    print(f"{head:32} {'phonenumbers':>13} {'fast path':>10} {'speed-up':>9}")
    for kind in ("all regions, all types", "DE mobile", "US"):
        numbers = _numbers(args.count, kind, rng)
        with _slow_only():
            slow = _cold_us(numbers, args.repeat, normalize.hash_phone)
        fast = _cold_us(numbers, args.repeat, normalize.hash_phone)
        print(f"{kind:32} {slow:11.2f}us {fast:8.2f}us {slow / fast:8.1f}x")
    written = {"DE mobile, +49 170 1234567": "{0} {1} {2}",
               "US, +1 (213) 373-4253": "{0} ({1}) {2}"}
    for kind, form in written.items():
        digits = _numbers(args.count, "DE mobile" if kind.startswith("DE") else "US", rng)
        cut = 3 if kind.startswith("DE") else 2
        numbers = [form.format(n[:cut], n[cut:cut + 3], f"{n[cut + 3:cut + 6]}-{n[cut + 6:]}")
                   for n in digits]
        with _slow_only():
            slow = _cold_us(numbers, args.repeat, normalize.hash_phone)
        fast = _cold_us(numbers, args.repeat, normalize.hash_phone)
        print(f"{kind:32} {slow:11.2f}us {fast:8.2f}us {slow / fast:8.1f}x")
    print(
        f"compiling all {len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)} calling codes once "
        f"(lazily, per code, on first use): {compile_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
