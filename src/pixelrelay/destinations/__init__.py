"""Destinations by type. A new destination is a folder here plus one REGISTRY line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pixelrelay import metrics
from pixelrelay.destinations.base import Destination
from pixelrelay.destinations.meta import PLUGIN as META
from pixelrelay.destinations.plugin import SAME_NAMES, Names, Plugin
from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.destinations.tiktok import PLUGIN as TIKTOK
from pixelrelay.errors import ConfigError
from pixelrelay.model import declare_ids

REGISTRY: dict[str, Plugin] = {p.type: p for p in (TIKTOK, META)}


def foreign_names(plugin: Plugin) -> dict[str, str]:
    """Each other registered type's name for one of pixelrelay's own names -> this type's
    name for it (its concept_names): a sender's event named for another platform."""
    return {theirs: plugin.concept_names[concept]
            for other in REGISTRY.values() if other.type != plugin.type
            for concept, theirs in other.concept_names.items()
            if concept in plugin.concept_names and theirs != plugin.concept_names[concept]}


# A type that adopts them names them by default: they join the incoming names it knows.
for _type, _plugin in list(REGISTRY.items()):
    if _plugin.adopt_names is not None:
        REGISTRY[_type] = replace(
            _plugin, default_incoming=_plugin.adopt_names(foreign_names(_plugin)))
# Their click and browser ids are user keys the parser, the store and the sessions know.
declare_ids(key for p in REGISTRY.values() for key in p.ids)

# Each type's standard names and codes are metric labels in every process that can send.
for _plugin in REGISTRY.values():
    metrics.allow_labels(_plugin.standard_events | _plugin.default_names, {},
                         _plugin.known_codes)


def plugin_for(type_name: str) -> Plugin | None:
    return REGISTRY.get(type_name)


def build_destination(settings: DestinationSettings) -> Destination:
    plugin = REGISTRY.get(settings.type)
    if plugin is None:
        raise ConfigError(f"destinations.{settings.name}.type",
                          f"unknown destination type {settings.type!r} "
                          f"(known: {', '.join(sorted(REGISTRY))})")
    # Its event_map's names get metric labels of their own; any other invented name is
    # counted as `other` (metrics.event_label).
    metrics.allow_labels((), settings.event_map, ())
    return plugin.build(settings)


def names_of(settings: DestinationSettings) -> Names:
    """The destination's event names under its event_map."""
    plugin = REGISTRY[settings.type]
    return plugin.names(settings.event_map)


def id_names(destinations: Sequence[DestinationSettings]) -> Names:
    """The names derived event_ids follow (ord_<order>_<snake name>): the first destination's,
    as the browser tag embeds them."""
    return names_of(destinations[0]) if destinations else SAME_NAMES


def purchase_names() -> frozenset[str]:
    """Every name a purchase goes by at any registered destination type."""
    return frozenset().union(*(p.purchase_events for p in REGISTRY.values()))


def standard_names() -> frozenset[str]:
    return frozenset().union(*(p.standard_events for p in REGISTRY.values()))


__all__ = ["REGISTRY", "Destination", "DestinationSettings", "Names", "Plugin",
           "build_destination", "id_names", "names_of", "plugin_for", "purchase_names",
           "standard_names"]
