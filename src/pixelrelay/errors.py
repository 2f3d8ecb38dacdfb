"""One exception tree; a Problem (refused) and a Notice (kept, changed) are values, not raised."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pixelrelay.records import record


@record
class Problem:
    """Why one field of one input was refused: `field` is a dotted path such as `user.email`.

    `reason` is the same text for every input refused for the same cause (diagnostics group
    by it); `detail` holds what varies (how old, how far ahead) and only goes to the sender.
    """

    field: str
    reason: str
    detail: str = ""

    def message(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.message()}


class NoticeKind(StrEnum):
    UNKNOWN_FIELD = "unknown_field"  # a key pixelrelay does not know: dropped, event kept
    DROPPED_VALUE = "dropped_value"  # a value that cannot be used (bad email): dropped
    UNVERIFIED = "unverified"  # kept, but could not be fully checked (a new phone range)


@record
class Notice:
    """Something ingest changed about an event it kept. Names the field, never the value."""

    field: str
    reason: str
    kind: NoticeKind

    def text(self) -> str:
        return f"{self.field}: {self.reason}"


class PixelrelayError(Exception):
    """Base of every error pixelrelay raises on purpose."""


class ConfigError(PixelrelayError):
    """The configuration is unusable; the message names the TOML key and never a secret."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config error at {key}: {reason}")
        self.key = key
        self.reason = reason


class ConfigErrors(ConfigError):
    """Every problem found in one reading of a configuration (one or more), so a config with
    three mistakes takes one run to fix, not three. As a ConfigError it names the first; its
    message lists them all, one a line."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        super().__init__(errors[0].key, errors[0].reason)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return str(self.errors[0])
        return f"{len(self.errors)} config errors:" + "".join(
            f"\n  {e.key}: {e.reason}" for e in self.errors)


class StoreUnavailable(PixelrelayError):
    """The store could not commit; the caller must answer 503 so the sender retries."""


class DatabaseInUse(PixelrelayError):
    """Another process owns this database (a running `serve`); the message names it."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"database {path} is already in use by another pixelrelay ({holder}); "
                         "stop that one first, or give this one its own storage.url")
        self.path = path
        self.holder = holder
