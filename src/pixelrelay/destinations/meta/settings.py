"""Meta's own [[destinations]] keys: the pixel (dataset) id and the Graph API version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pixelrelay.destinations.meta.payload import MAX_BATCH
from pixelrelay.destinations.settings import DestinationSettings, SettingsReader
from pixelrelay.secret import Secret

DEFAULT_API_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"
MAX_BATCH_SIZE = MAX_BATCH
KEYS = frozenset({"pixel_id", "api_version"})
_PIXEL_ID = re.compile(r"^[0-9]{6,20}$")  # a pixel or dataset id: digits
_VERSION = re.compile(r"^v[0-9]{1,3}\.[0-9]$")


@dataclass(frozen=True)
class MetaSettings:
    pixel_id: str
    api_version: str = DEFAULT_API_VERSION


def parse_settings(read: SettingsReader, t: dict[str, Any], p: str) -> MetaSettings:
    raw = t.get("pixel_id")
    pixel = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else read.string(
        t, f"{p}.pixel_id", "pixel_id")
    if not _PIXEL_ID.match(pixel):
        read.fail(f"{p}.pixel_id", "must be the digits of a Meta pixel or dataset id, as Events "
                                   "Manager shows it")
    version = read.string(t, f"{p}.api_version", "api_version", DEFAULT_API_VERSION)
    if not _VERSION.match(version):
        read.fail(f"{p}.api_version", "must be a Graph API version such as v25.0")
    return MetaSettings(pixel_id=pixel, api_version=version)


def meta_destination(*, name: str, access_token: Secret, pixel_id: str,
                     api_version: str = DEFAULT_API_VERSION, **keys: Any) -> DestinationSettings:
    """A Meta destination from keyword arguments as a [[destinations]] table has them."""
    keys.setdefault("api_url", DEFAULT_API_URL)
    return DestinationSettings(name=name, access_token=access_token, type="meta",
                               platform=MetaSettings(pixel_id, api_version), **keys)
