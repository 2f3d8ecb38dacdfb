"""Failed credential attempts per client address: past a small burst, 429 with Retry-After.

The budget is per process and in memory on purpose: keeping it in the shared database would
cost a write per guess, which hands the attacker a way to load the store. With N processes
an address gets N budgets, which still turns 26k guesses in 5 s into a few a minute.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.web.addresses import client_ip
from pixelrelay.web.http import problem_response

log = logging.getLogger(__name__)
BURST = 10  # failures an address may make in a row (a typo or a stale key is a few)
REFILL_S = 6.0  # after that, one more try every 6 s
MAX_ADDRESSES = 10_000  # least recently failing addresses are forgotten beyond this
SCOPE_KEY = "pixelrelay.credential_attempt"

# Which secret a request presents (a kind, e.g. "source key"), from its method and path, or
# None; and the 429 for an address out of budget in the shape that path's clients read.
KindOf = Callable[[str, str], str | None]
Refusal = Callable[[str, str, float], Response]


def no_credentials(method: str, path: str) -> str | None:
    return None


def rate_limited(kind: str, path: str, wait_s: float) -> Response:
    """The plain 429 (the problem shape of pixelrelay's own API), with Retry-After."""
    retry = retry_after_s(wait_s)
    return problem_response(
        429, "rate_limited",
        f"too many failed {kind} attempts from this address; retry after {retry} s",
        headers={"Retry-After": retry})


def retry_after_s(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))

def limit_key(address: str) -> str:
    """IPv6 addresses are counted per /64: one host commonly holds a whole /64."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return address
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


@dataclass(slots=True)
class _Budget:
    tokens: float
    at: float
    logged: bool = False  # this burst has been logged


class FailedCredentials:
    """A token bucket of failures per (kind, address); only failures spend from it.

    A request carrying a valid credential is never counted, so a client that always
    authenticates is never limited, however fast it sends. An address that ran out is
    refused before its credential is looked at: answering a right guess differently from a
    wrong one would leave guessing unlimited. Kinds are apart so that a backend with a
    stale source key does not lock its operator out of the diagnostics page.

    `kind_of` tells which requests present which credential, `refuse` answers an address out
    of budget: the app's routes know both (sources.credentials), this guard knows neither.
    """

    def __init__(self, burst: int = BURST, refill_s: float = REFILL_S,
                 monotonic: Callable[[], float] = time.monotonic,
                 max_addresses: int = MAX_ADDRESSES, *, kind_of: KindOf = no_credentials,
                 refuse: Refusal = rate_limited) -> None:
        self.kind_of = kind_of
        self.refuse = refuse
        self.burst = float(burst)
        self.refill_s = refill_s
        self._monotonic = monotonic
        self._max = max_addresses
        self._budgets: OrderedDict[tuple[str, str], _Budget] = OrderedDict()

    def _refilled(self, key: tuple[str, str]) -> _Budget | None:
        budget = self._budgets.get(key)
        if budget is None:
            return None
        now = self._monotonic()
        budget.tokens = min(self.burst, budget.tokens + (now - budget.at) / self.refill_s)
        budget.at = now
        if budget.tokens >= self.burst:  # a full bucket is the same as no entry
            del self._budgets[key]
            return None
        return budget

    @property
    def clear(self) -> bool:
        """No address has failures left to refill: nobody can be out of budget."""
        return not self._budgets

    def retry_after(self, kind: str, address: str) -> float:
        """0 when the address may present a credential of `kind` now, else seconds to wait."""
        budget = self._refilled((kind, limit_key(address)))
        if budget is None or budget.tokens >= 1.0:
            return 0.0
        return (1.0 - budget.tokens) * self.refill_s

    def failed(self, kind: str, address: str) -> bool:
        """Count one failure; True when it used up the budget in a burst not yet reported."""
        key = (kind, limit_key(address))
        budget = self._refilled(key)
        if budget is None:
            budget = self._budgets[key] = _Budget(self.burst, self._monotonic())
        self._budgets.move_to_end(key)
        while len(self._budgets) > self._max:
            self._budgets.popitem(last=False)
        budget.tokens = max(0.0, budget.tokens - 1.0)
        if budget.tokens >= 1.0 or budget.logged:
            return False
        # Reported once until the bucket is full again, i.e. until the address stopped
        # failing for a whole burst's worth of refills: a steady guesser is one line.
        budget.logged = True
        return True


class Attempt:
    """A request presenting a credential of `kind`; its client address is worked out only
    when a failure is counted or some address is out of budget (most requests need neither)."""

    __slots__ = ("_address", "_forwarded_for", "_peer", "_trusted", "kind", "limiter")

    def __init__(self, limiter: FailedCredentials, kind: str, peer: str | None,
                 forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> None:
        self.limiter = limiter
        self.kind = kind
        self._peer = peer
        self._forwarded_for = forwarded_for
        self._trusted = trusted_proxies
        self._address: str | None = None

    @property
    def address(self) -> str:
        if self._address is None:
            self._address = client_ip(self._peer, self._forwarded_for,
                                      self._trusted) or "unknown"
        return self._address


def credential_failed(request: Request) -> None:
    """Report that `request` presented a wrong credential (call it where the 401 is made)."""
    attempt: Attempt | None = request.scope.get(SCOPE_KEY)
    if attempt is None:  # an endpoint used without the guard in front of it
        return
    if attempt.limiter.failed(attempt.kind, attempt.address):
        log.warning("%d failed %s attempts from %s: its %s requests get 429 until it slows "
                    "down to one try per %g s", int(attempt.limiter.burst), attempt.kind,
                    attempt.address, attempt.kind, attempt.limiter.refill_s)
