"""What every configured destination has ([[destinations]] keys common to all types), with its
type's own settings as `platform`, and the reader a type parses its own keys with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pixelrelay.secret import Secret

DEFAULT_MAX_AGE_DAYS = 7


class SettingsReader(Protocol):
    """Typed access to one TOML table with `${VAR}` substitution and key paths in errors
    (config's reader): what a destination type parses its own keys with.

    A wrong value is recorded (every one is reported at once) and read as its default, or ""
    for a required string; `fail` records a type's own finding the same way. A type may also
    raise ConfigError, which ends the reading of its keys."""

    def fail(self, path: str, reason: str) -> None: ...

    def string(self, t: dict[str, Any], path: str, key: str,
               default: str | None = None) -> str: ...

    def secret(self, t: dict[str, Any], path: str, key: str, required: bool) -> Secret: ...

    def strings(self, t: dict[str, Any], path: str, key: str,
                default: tuple[str, ...]) -> tuple[str, ...]: ...

    def integer(self, t: dict[str, Any], path: str, key: str, default: int,
                lo: int, hi: int) -> int: ...

    def choice(self, t: dict[str, Any], path: str, key: str,
               options: tuple[str, ...]) -> str: ...


@dataclass(frozen=True)
class DestinationSettings:
    """One [[destinations]] table: the common keys, and `platform`, its type's own settings
    (TikTok's pixel and event-set ids, Meta's pixel id and API version...)."""

    name: str
    access_token: Secret
    platform: Any  # the type's settings class, from its plugin's parse_settings
    type: str = "tiktok"
    api_url: str = ""
    test_event_code: str = ""
    events: tuple[str, ...] = ("*",)
    exclude_events: tuple[str, ...] = ()
    exclude_order_sources: tuple[str, ...] = ()
    batch_size: int = 1000
    max_age_days: int = DEFAULT_MAX_AGE_DAYS
    default_phone_region: str = ""
    event_map: dict[str, str] = field(default_factory=dict)
