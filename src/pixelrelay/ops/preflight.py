"""`pixelrelay check`'s pre-flight: Settings -> every finding (error or warning) with its key."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pixelrelay.config import DestinationSettings, Secret, Settings, SourceSettings
from pixelrelay.destinations.tiktok.mapping import APP_STANDARD_EVENTS, STANDARD_EVENTS, name_key

Level = Literal["error", "warning"]
# TikTok pixel codes are C + 19 uppercase letters/digits today; older ones are shorter.
_PIXEL_CODE = re.compile(r"C[A-Z0-9]{14,24}")
_TYPO_RATIO = 0.8  # at or above: a misspelt standard name, not a deliberate custom event
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_HINT_RATIO = 0.6  # below: the nearest standard name is no hint at all


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    path: str  # the TOML key, e.g. destinations[0].event_map.Purchase
    message: str


def findings(settings: Settings) -> list[Finding]:
    """Everything wrong or doubtful in `settings`, all at once (no I/O)."""
    out: list[Finding] = []
    if not settings.sources:
        out.append(Finding("error", "sources", "no [[sources]]: nothing can send events"))
    if not settings.destinations:
        out.append(Finding("error", "destinations",
                           "no [[destinations]]: accepted events would go nowhere"))
    if not settings.server.admin_token:
        out.append(Finding("warning", "server.admin_token",
                           "empty: the diagnostics page, /v1/diagnostics, /v1/deliveries and "
                           "resume are closed"))
    keys: dict[str, int] = {}
    for i, s in enumerate(settings.sources):
        out += source_findings(s, f"sources[{i}]")
        if s.key:
            first = keys.setdefault(s.key.reveal(), i)
            if first != i:
                out.append(Finding("warning", f"sources[{i}].key",
                                   f"same key as sources[{first}]: both count as one source "
                                   "(and a browser key is public: it is in your pages)"))
    for i, d in enumerate(settings.destinations):
        out += destination_findings(d, f"destinations[{i}]")
    return out


def source_findings(s: SourceSettings, path: str) -> list[Finding]:
    out: list[Finding] = []
    if s.kind == "shopify" and not s.secret:
        out.append(Finding("error", f"{path}.secret",
                           "a shopify source needs the webhook signing secret (Shopify admin > "
                           "Settings > Notifications > Webhooks); without it every webhook is "
                           "refused"))
    if s.kind == "browser" and not s.allowed_origins:
        out.append(Finding("warning", f"{path}.allowed_origins",
                           "empty: any web page that copies the site key can post events; list "
                           'your site, e.g. ["https://shop.example"]'))
    return out


def destination_findings(d: DestinationSettings, path: str) -> list[Finding]:
    out: list[Finding] = []
    if not _PIXEL_CODE.fullmatch(d.pixel_code):
        out.append(Finding("warning", f"{path}.pixel_code",
                           f"{d.pixel_code!r} does not look like a TikTok pixel code (C and 14 to "
                           "24 uppercase letters or digits, e.g. CABCDE1234567890ABCD); copy it "
                           "from Events Manager"))
    if d.test_event_code:
        out.append(Finding("warning", f"{path}.test_event_code",
                           "set: every event goes to Test Events, none to production (remove it "
                           "to go live; `check --send-test --test-event-code CODE` tests a live "
                           "destination without it)"))
    if _plain_http_remote(d.api_url):
        out.append(Finding("warning", f"{path}.api_url",
                           "http:// to a remote host: the access token would travel unencrypted"))
    for incoming, target in d.event_map.items():
        found = _event_name_finding(target, app=bool(d.app_id))
        if found is not None:
            level, message = found
            out.append(Finding(level, f"{path}.event_map.{_key(incoming)}", message))
    return out


def _event_name_finding(name: str, app: bool) -> tuple[Level, str] | None:
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


def _plain_http_remote(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


# -- the settings as shown, secrets masked --------------------------------------------------


def show(settings: Settings) -> list[str]:
    """Every section as TOML-like lines; secrets masked, a password in a URL too."""
    lines: list[str] = []
    for name in ("server", "storage", "delivery", "consent", "sessions"):
        lines.append(f"[{name}]")
        lines += _fields(getattr(settings, name))
    for kind, items in (("sources", settings.sources), ("destinations", settings.destinations)):
        for i, item in enumerate(items):
            lines.append(f"[[{kind}]]  # {kind}[{i}]")
            lines += _fields(item)
    return lines


def _fields(section: Any) -> list[str]:
    return [f"  {f.name} = {_value(getattr(section, f.name))}"
            for f in dataclasses.fields(section)]


def _value(v: object) -> str:
    if isinstance(v, Secret):
        return v.masked()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _quote(mask_url(v))
    if isinstance(v, tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_quote(k)} = {_value(x)}" for k, x in v.items()) + " }"
    return repr(v)


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _quote(k)  # event_map."Order Completed"


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a TOML basic string, as in the config


def mask_url(value: str) -> str:
    """`postgresql://user:pw@host/db` -> `postgresql://user:****@host/db`; others unchanged."""
    if "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:****@{netloc}"))
