"""One exception tree; a Problem (field, reason) is a value, never an exception."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one field of one input was refused: `field` is a dotted path such as `user.email`."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class PixelrelayError(Exception):
    """Base of every error pixelrelay raises on purpose."""


class ConfigError(PixelrelayError):
    """The configuration is unusable; the message names the TOML key and never a secret."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config error at {key}: {reason}")
        self.key = key
        self.reason = reason


class StoreUnavailable(PixelrelayError):
    """The store could not commit; the caller must answer 503 so the sender retries."""
