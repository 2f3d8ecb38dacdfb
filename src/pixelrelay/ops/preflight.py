"""`pixelrelay check`'s pre-flight: Settings -> every finding (error or warning) with its key."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pixelrelay.config import DestinationSettings, Secret, Settings, SourceSettings
from pixelrelay.destinations import plugin_for

Level = Literal["error", "warning"]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


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
    plugin = plugin_for(d.type)
    # The type's own checks (its id shapes, its event names), once its own keys have parsed.
    if plugin is not None and d.platform is not None:
        out += [Finding("error" if level == "error" else "warning", f"{path}.{key}", message)
                for level, key, message in plugin.preflight(d)]
    if d.test_event_code:
        out.append(Finding("warning", f"{path}.test_event_code",
                           "set: every event goes to Test Events, none to production (remove it "
                           "to go live; `check --send-test --test-event-code CODE` tests a live "
                           "destination without it)"))
    if _plain_http_remote(d.api_url):
        out.append(Finding("warning", f"{path}.api_url",
                           "http:// to a remote host: the access token would travel unencrypted"))
    return out


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
    out: list[str] = []
    for f in dataclasses.fields(section):
        v = getattr(section, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out += _fields(v)  # a destination type's own keys, as its TOML table has them
        else:
            out.append(f"  {f.name} = {_value(v)}")
    return out


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
