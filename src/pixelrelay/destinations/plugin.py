"""What a destination type registers (one REGISTRY line): its settings, its factory, its names
and the facts shared code asks of it, so that nothing outside its folder names the platform."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pixelrelay.destinations.base import Destination
from pixelrelay.destinations.settings import DestinationSettings, SettingsReader


class Names(Protocol):
    """A destination's event names: incoming name (and source: web, app...) -> its name."""

    def __call__(self, name: str, source: str = "web") -> str: ...

    def as_sent(self, name: str, source: str = "web") -> str:
        """For a name that already is the platform's own (a drop-in endpoint's): only an
        exact event_map entry renames it."""
        ...


class _SameNames:
    """Names without a destination: each name as it came."""

    def __call__(self, name: str, source: str = "web") -> str:
        return name

    def as_sent(self, name: str, source: str = "web") -> str:
        return name


SAME_NAMES: Names = _SameNames()


@dataclass(frozen=True)
class Plugin:
    type: str
    keys: frozenset[str]  # its own [[destinations]] keys, beside the common ones
    default_api_url: str
    max_batch_size: int  # events the platform takes in one request
    parse_settings: Callable[[SettingsReader, dict[str, Any], str], object]
    build: Callable[[DestinationSettings], Destination]
    names: Callable[[Mapping[str, str]], Names]  # from an event_map
    standard_events: frozenset[str]  # its standard names (metric labels, preflight)
    purchase_events: frozenset[str]  # the names its purchases go by
    default_incoming: frozenset[str]  # the incoming names its default map knows
    default_names: frozenset[str]  # the names its default map sends
    known_codes: frozenset[int]  # the answer codes it classifies
    # Whether it hashes the personal keys its own way from plaintext (Event.plain); False:
    # the stored hash set (SHA-256 of the normalised values, phone E.164 with +) is its own.
    hashes_plaintext: bool
    # A destination on this type's emulator in the `serve` process at the base URL (sandbox).
    sandbox: Callable[[str], DestinationSettings]
    # `check`'s findings about one destination: (error | warning, key under it, message).
    preflight: Callable[[DestinationSettings], list[tuple[str, str, str]]]
    # The ids its emulator must accept for this destination (sandbox and tests).
    emulator_ids: Callable[[DestinationSettings], tuple[str, ...]]
    # The platform's id for each event source it sends (web, app...), as the page shows them.
    source_ids: Callable[[DestinationSettings], dict[str, str]]
