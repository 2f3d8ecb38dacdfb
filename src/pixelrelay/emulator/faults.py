"""Fault configuration and seeded, reproducible per-request fault decisions."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from pixelrelay.emulator.control import NOT_SHARED, coerce_shared, update_fields


@dataclass
class Faults:
    """What the emulator should get wrong on purpose. Rates are probabilities in [0, 1]."""

    http_5xx_rate: float = 0.0
    code_40100_rate: float = 0.0
    code_50000_rate: float = 0.0
    latency_ms: float = 0.0
    reject_event: str | None = None  # this event name -> 40002 naming the field
    setup_error_code: int | None = None  # e.g. 40105 / 40001: every request answers it
    # Read each request and never answer it: a TikTok that accepts connections but hangs.
    # Held requests are let go (503, nothing recorded) once the fault is lifted or reset.
    hang: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial JSON update, all or nothing; ValueError names the bad field."""
        update_fields(self, changes, _coerce)


_RATES = ("http_5xx_rate", "code_40100_rate", "code_50000_rate")


def _coerce(key: str, value: Any) -> Any:
    shared = coerce_shared(key, value, _RATES)
    if shared is not NOT_SHARED:
        return shared
    if value is not None and type(value) is not int:
        raise ValueError(f"{key}: must be an integer or null")
    return value


class FaultDice:
    """Seeded decisions so that a test replaying the same requests sees the same faults.

    A die is rolled only when its rate is non-zero, so enabling one fault kind does not shift
    the sequence of another that is off.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def reseed(self) -> None:
        self._rng = random.Random(self.seed)

    def roll(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        return self._rng.random() < rate
