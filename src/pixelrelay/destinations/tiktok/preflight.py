"""`check`'s findings about a TikTok destination: its ids' shapes and its event names."""

from __future__ import annotations

import difflib
import json
import re

from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.destinations.tiktok.mapping import APP_STANDARD_EVENTS, STANDARD_EVENTS
from pixelrelay.destinations.tiktok.settings import TikTokSettings
from pixelrelay.names import name_key

# TikTok pixel codes are C + 19 uppercase letters/digits today; older ones are shorter.
_PIXEL_CODE = re.compile(r"C[A-Z0-9]{14,24}")
_TYPO_RATIO = 0.8  # at or above: a misspelt standard name, not a deliberate custom event
_HINT_RATIO = 0.6  # below: the nearest standard name is no hint at all
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
Finding = tuple[str, str, str]  # (error | warning, key under the destination, message)


def findings(d: DestinationSettings) -> list[Finding]:
    own = d.platform
    assert isinstance(own, TikTokSettings), own
    out: list[Finding] = []
    if not _PIXEL_CODE.fullmatch(own.pixel_code):
        out.append(("warning", "pixel_code",
                    f"{own.pixel_code!r} does not look like a TikTok pixel code (C and 14 to "
                    "24 uppercase letters or digits, e.g. CABCDE1234567890ABCD); copy it "
                    "from Events Manager"))
    for incoming, target in d.event_map.items():
        found = _event_name_finding(target, app=bool(own.app_id))
        if found is not None:
            level, message = found
            out.append((level, f"event_map.{_key(incoming)}", message))
    return out


def _event_name_finding(name: str, app: bool) -> tuple[str, str] | None:
    if name in STANDARD_EVENTS or (app and name in APP_STANDARD_EVENTS):
        return None
    given = _quote(name)
    if name in APP_STANDARD_EVENTS:
        return "warning", (f"{given} is a TikTok standard name for app events only: web events "
                           "send it as a custom event (set app_id if this destination gets "
                           "app events)")

    def likeness(standard: str) -> float:
        return difflib.SequenceMatcher(None, name_key(name), name_key(standard)).ratio()

    nearest = max(sorted(STANDARD_EVENTS | (APP_STANDARD_EVENTS if app else frozenset())),
                  key=likeness)
    ratio = likeness(nearest)
    if ratio >= _TYPO_RATIO:
        return "error", (f"{given} is not a TikTok standard event name; did you mean "
                         f"{_quote(nearest)}? (names are case-sensitive, and the Pixel's "
                         "events deduplicate only against the identical name)")
    hint = f" (nearest: {_quote(nearest)})" if ratio >= _HINT_RATIO else ""
    return "warning", (f"{given} is not a TikTok standard event name{hint}: it is sent as a "
                       "custom event, which TikTok reports but does not optimise for")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _quote(k)  # event_map."Order Completed"


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a TOML basic string, as in the config
