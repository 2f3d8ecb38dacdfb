"""TikTok's own [[destinations]] keys: the pixel code and the ids of its other event sets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pixelrelay.destinations.settings import DestinationSettings, SettingsReader
from pixelrelay.secret import Secret

DEFAULT_API_URL = "https://business-api.tiktok.com"
MAX_BATCH_SIZE = 1000  # events in one event/track request
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEYS = frozenset({"pixel_code", "offline_event_set_id", "crm_event_set_id", "app_id"})


@dataclass(frozen=True)
class TikTokSettings:
    pixel_code: str
    # event_source_id of the other sources' events; without one, such events are filtered.
    offline_event_set_id: str = ""
    crm_event_set_id: str = ""
    app_id: str = ""  # the TikTok App ID (not the store id that app events carry)

    def ids(self) -> tuple[str, ...]:
        """Every event_source_id this destination sends under."""
        return tuple(i for i in (self.pixel_code, self.offline_event_set_id,
                                 self.crm_event_set_id, self.app_id) if i)


def parse_settings(read: SettingsReader, t: dict[str, Any], p: str) -> TikTokSettings:
    pixel = read.string(t, f"{p}.pixel_code", "pixel_code")
    if not _ID.match(pixel):
        read.fail(f"{p}.pixel_code", "must be letters and digits, like C9ABC1234567890")
    return TikTokSettings(pixel_code=pixel, **{
        key: _source_id(read, t, f"{p}.{key}", key)
        for key in ("offline_event_set_id", "crm_event_set_id", "app_id")})


def _source_id(read: SettingsReader, t: dict[str, Any], path: str, key: str) -> str:
    """An optional TikTok id (event set or app); numbers are taken as their digits."""
    v = t.get(key, "")
    value = str(v) if isinstance(v, int) and not isinstance(v, bool) else read.string(
        t, path, key, "")
    if value and not _ID.match(value):
        read.fail(path, "must be letters and digits as TikTok shows it")
    return value


def tiktok_destination(*, name: str, access_token: Secret, pixel_code: str,
                       **keys: Any) -> DestinationSettings:
    """A TikTok destination from keyword arguments as a [[destinations]] table has them (the
    common keys and TikTok's own together): for code and tests that build settings by hand."""
    own = {k: keys.pop(k) for k in KEYS - {"pixel_code"} if k in keys}
    keys.setdefault("api_url", DEFAULT_API_URL)
    return DestinationSettings(name=name, access_token=access_token, type="tiktok",
                               platform=TikTokSettings(pixel_code=pixel_code, **own), **keys)
