"""Destinations by type. A new destination is a folder here plus one REGISTRY line."""

from __future__ import annotations

from collections.abc import Callable

from pixelrelay.config import DestinationSettings
from pixelrelay.destinations.base import Destination
from pixelrelay.destinations.tiktok import TikTokDestination
from pixelrelay.errors import ConfigError

REGISTRY: dict[str, Callable[[DestinationSettings], Destination]] = {
    "tiktok": TikTokDestination,
}


def build_destination(settings: DestinationSettings) -> Destination:
    factory = REGISTRY.get(settings.type)
    if factory is None:
        raise ConfigError(f"destinations.{settings.name}.type",
                          f"unknown destination type {settings.type!r} "
                          f"(known: {', '.join(sorted(REGISTRY))})")
    return factory(settings)
