"""What the Meta emulator gets wrong on purpose; decisions come from the shared seeded FaultDice."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pixelrelay.emulator.control import NOT_SHARED, coerce_shared, update_fields
from pixelrelay.emulator.meta.graph import INJECTABLE, RATE_LIMIT_CODES

_RATES = ("http_5xx_rate", "transient_rate", "unknown_error_rate", "rate_limit_rate")


@dataclass
class MetaFaults:
    """Rates are probabilities in [0, 1], rolled per request in the order they are listed."""

    http_5xx_rate: float = 0.0  # an HTML 503, not a Graph error object
    transient_rate: float = 0.0  # code 2, is_transient, HTTP 500
    unknown_error_rate: float = 0.0  # code 1, is_transient, HTTP 500
    rate_limit_rate: float = 0.0
    rate_limit_code: int = 17  # 4, 17 or 613
    latency_ms: float = 0.0
    # Read each request and never answer it; held requests are let go (503, nothing recorded)
    # once the fault is lifted or reset.
    hang: bool = False
    reject_event: str | None = None  # this event_name -> 100 naming the field
    setup_error_code: int | None = None  # every request answers this code (see graph.INJECTABLE)
    # Tokens that were valid and got revoked: 190/460 from now on.
    revoked_tokens: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial JSON update, all or nothing; ValueError names the bad field."""
        update_fields(self, changes, _coerce)


def _coerce(key: str, value: Any) -> Any:
    shared = coerce_shared(key, value, _RATES)
    if shared is not NOT_SHARED:
        return shared
    if key == "revoked_tokens":
        if type(value) is not list or any(type(t) is not str for t in value):
            raise ValueError(f"{key}: must be a list of strings")
        return list(value)
    if key == "rate_limit_code":
        if value not in RATE_LIMIT_CODES or type(value) is not int:
            raise ValueError(f"{key}: must be one of {sorted(RATE_LIMIT_CODES)}")
        return value
    # setup_error_code
    if value is not None and (type(value) is not int or value not in INJECTABLE):
        raise ValueError(f"{key}: must be null or one of {sorted(INJECTABLE)}")
    return value
