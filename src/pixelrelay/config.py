"""TOML configuration -> Settings: `${VAR}` from the environment, masked secrets, keyed errors
(every one of them, found in one reading)."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelrelay.destinations import REGISTRY, Plugin, plugin_for
from pixelrelay.destinations.settings import DEFAULT_MAX_AGE_DAYS, DestinationSettings
from pixelrelay.errors import ConfigError, ConfigErrors
from pixelrelay.pipeline.readers import nearest
from pixelrelay.secret import Secret
from pixelrelay.store import url as storage_url

log = logging.getLogger(__name__)

__all__ = ["DestinationSettings", "Secret", "Settings", "load_settings", "parse_settings",
           "read_config", "read_settings"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
COMMON_DESTINATION_KEYS = frozenset({
    "name", "type", "access_token", "api_url", "test_event_code", "events", "exclude_events",
    "exclude_order_sources", "batch_size", "max_age_days", "default_phone_region", "event_map"})
SANDBOX_SOURCE_KEY = "dev-key"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: Secret = field(default_factory=lambda: Secret(""))
    trusted_proxies: tuple[str, ...] = ()
    body_timeout_s: float = 15.0  # a request body still incomplete after this gets 408


@dataclass(frozen=True)
class StorageSettings:
    url: str = "sqlite:///pixelrelay.db"  # or postgresql://user@host:5432/database
    # Finished deliveries, their events and the attempts log are deleted after this many
    # days. At least 3: more than the 48 h idempotency window and the 48 h retry window.
    retention_days: int = 30

    @property
    def retention_s(self) -> float:
        return self.retention_days * 86400.0


@dataclass(frozen=True)
class SourceSettings:
    name: str
    kind: str  # server | browser | shopify
    key: Secret
    allowed_origins: tuple[str, ...] = ()
    secret: Secret = field(default_factory=lambda: Secret(""))
    purchase_topic: str = "orders/create"  # shopify: the topic that counts as the Purchase
    content_id: str = "sku"  # shopify: sku | variant_id | product_id for contents[].content_id
    rate_limit: float = 0.0  # events per second this source may send (0 = unlimited) -> 429
    consent_required: bool = False  # browser: the tag sends nothing and sets no cookie before
    page_views: bool = False  # browser: the tag tracks PageView, SPA history changes included
    # shopify: the consent of an order whose visitor's answer is unknown. "session": the
    # browser session's (found through the cart token), else the region rule on the billing
    # country; "granted" / "denied": that, when no session answer is known.
    assume: str = "session"


@dataclass(frozen=True)
class DeliverySettings:
    """Tuning of the delivery loop; defaults suit production."""

    flush_interval_s: float = 0.2  # wait this long for a batch to fill
    retry_base_s: float = 2.0
    retry_cap_s: float = 600.0
    # Retries stop at max_age_hours (TikTok's dedup window); this bound only catches a loop.
    # At the 10-min cap, 300 attempts outlast 48 h, so a long outage never kills events.
    max_attempts: int = 300
    max_age_hours: float = 48.0  # TikTok deduplicates for 48 h; never retry beyond it
    request_timeout_s: float = 30.0
    lease_s: float = 120.0
    max_qps: float = 500.0  # per destination, below TikTok's 1,000 QPS


@dataclass(frozen=True)
class ConsentSettings:
    """Regions whose visitors must consent: an event from them without consent is denied."""

    require_in_regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionSettings:
    """Browser-session context kept for restoring it onto server events.

    The session cookie is rolling (re-set on every hit), so a session ends after
    `session_cookie_days` without a hit; one day outlives a checkout started in the evening
    and finished the next morning, and identity links carry context beyond it.
    """

    # Life of the gateway's cookie of a landing click id (prx_<param>): ad platforms attribute
    # clicks within about four weeks (TikTok 28 days).
    click_id_cookie_days: int = 30
    session_cookie_days: int = 1
    identity_window_days: int = 7
    cookie_domain: str = ""  # e.g. "shop.example" so the shop's backend sees the cookies
    # A browser-tag purchase waits this long before it is sent, so the order's server copy
    # (Shopify webhook, backend) can merge into it first: the server's copy is the truth.
    purchase_hold_s: float = 5.0


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    sources: tuple[SourceSettings, ...] = ()
    destinations: tuple[DestinationSettings, ...] = ()
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    consent: ConsentSettings = field(default_factory=ConsentSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    sandbox: bool = False  # started without a config: deliver to the in-process emulator

    def destination(self, name: str) -> DestinationSettings:
        for d in self.destinations:
            if d.name == name:
                return d
        raise KeyError(name)


def sandbox_settings(host: str = "127.0.0.1", port: int = 8080) -> Settings:
    """What `pixelrelay serve` runs with no config: SQLite here, the built-in emulator as TikTok."""
    return Settings(
        server=ServerSettings(host=host, port=port, admin_token=Secret(SANDBOX_SOURCE_KEY)),
        sources=(SourceSettings(name="sandbox", kind="server", key=Secret(SANDBOX_SOURCE_KEY)),),
        # Each destination type that has an emulator gets a sandbox destination on it.
        destinations=tuple(plugin.sandbox(f"http://{_url_host(host)}:{port}")
                           for plugin in REGISTRY.values()),
        sandbox=True,
    )


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def load_settings(path: str | Path, env: dict[str, str] | None = None) -> Settings:
    """Read and validate a TOML file; raises ConfigErrors naming every wrong key."""
    return parse_settings(_read_toml(path), os.environ if env is None else env)


def read_config(path: str | Path,
                env: dict[str, str] | None = None) -> tuple[Settings, list[ConfigError]]:
    """`check`'s reading: the settings (a default in place of each wrong value) and every
    problem. Raises ConfigError only when the file cannot be read or is not TOML."""
    return read_settings(_read_toml(path), os.environ if env is None else env)


def _read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(p), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), f"cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), f"not valid TOML: {exc}") from None


def parse_settings(raw: dict[str, Any], env: dict[str, str] | os._Environ[str]) -> Settings:
    """Validated settings; raises ConfigErrors (a ConfigError) listing every problem."""
    settings, errors = read_settings(raw, env)
    if errors:
        raise ConfigErrors(errors)
    return settings


def read_settings(raw: dict[str, Any], env: dict[str, str] | os._Environ[str]
                  ) -> tuple[Settings, list[ConfigError]]:
    """Every section read, each wrong value recorded and replaced by its default so the rest
    is still read: the settings, and every problem in the order of the file's sections."""
    r = _Reader(env)
    r.reject_unknown(raw, "", TOP_SECTIONS, what="section")
    server = r.server(r.table(raw, "server"))
    storage = r.storage(r.table(raw, "storage"))
    sources = tuple(r.source(t, f"sources[{i}]") for i, t in enumerate(r.tables(raw, "sources")))
    dests = tuple(r.destination(t, f"destinations[{i}]")
                  for i, t in enumerate(r.tables(raw, "destinations")))
    for label, names in (("sources", [s.name for s in sources]),
                         ("destinations", [d.name for d in dests])):
        dup = sorted({n for n in names if n and names.count(n) > 1})
        if dup:
            r.fail(label, f"duplicate name {dup[0]!r}")
    delivery = r.delivery(r.table(raw, "delivery"))
    consent = r.consent(r.table(raw, "consent"))
    settings = Settings(server=server, storage=storage, sources=sources, destinations=dests,
                        delivery=delivery, consent=consent,
                        sessions=r.sessions(r.table(raw, "sessions")))
    return settings, r.errors


# Keys renamed in [sessions] (old -> new), as the types once named for their platform
# declare them: the old name is read for one more release.
_RENAMED_SESSION_KEYS = {old: new for plugin in REGISTRY.values()
                         for old, new in plugin.renamed_session_keys.items()}

TOP_SECTIONS = frozenset({"server", "storage", "sources", "destinations", "delivery", "consent",
                          "sessions"})


class _Reader:
    """Typed access to the raw TOML with `${VAR}` substitution and key paths in errors.

    A wrong value is recorded in `errors` and read as its default, so one reading finds every
    problem (`check` prints them all, `serve` refuses to start naming them all).
    """

    def __init__(self, env: dict[str, str] | os._Environ[str]) -> None:
        self.env = env
        self.errors: list[ConfigError] = []

    def fail(self, path: str, reason: str) -> None:
        self.record(ConfigError(path, reason))

    def record(self, error: ConfigError) -> None:
        # One problem a key: a required id that is missing is not also malformed.
        if all(e.key != error.key for e in self.errors):
            self.errors.append(error)

    def table(self, raw: dict[str, Any], key: str) -> dict[str, Any]:
        v = raw.get(key, {})
        if not isinstance(v, dict):
            self.fail(key, "must be a table")
            return {}
        return v

    def tables(self, raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
        v = raw.get(key, [])
        if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
            self.fail(key, f"must be an array of tables ([[{key}]])")
            return []
        return v

    def _subst(self, value: str, path: str) -> str:
        unset: list[str] = []

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.env:
                unset.append(name)
                return ""
            return self.env[name]

        out = _VAR.sub(repl, value)
        if unset:
            self.fail(path, f"environment variable{'s' if len(unset) > 1 else ''} "
                            f"{', '.join(unset)} {'are' if len(unset) > 1 else 'is'} not set")
        return out

    def string(self, t: dict[str, Any], path: str, key: str, default: str | None = None) -> str:
        if key not in t:
            if default is None:
                self.fail(path, "is required")
                return ""
            return default
        v = t[key]
        if not isinstance(v, str):
            self.fail(path, f"must be a string, got {type(v).__name__}")
            return default or ""
        return self._subst(v, path)

    def secret(self, t: dict[str, Any], path: str, key: str, required: bool) -> Secret:
        if key not in t and not required:
            return Secret("")
        v = self.string(t, path, key)
        if required and not v:
            self.fail(path, "is empty")
        return Secret(v)

    def integer(self, t: dict[str, Any], path: str, key: str, default: int,
                lo: int, hi: int) -> int:
        v = t.get(key, default)
        if isinstance(v, str):
            v = self._subst(v, path)
            if not v.strip().lstrip("-").isdigit():
                self.fail(path, "must be an integer")
                return default
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            self.fail(path, "must be an integer")
            return default
        if not lo <= v <= hi:
            self.fail(path, f"must be between {lo} and {hi}, got {v}")
            return default
        return v

    def number(self, t: dict[str, Any], path: str, key: str, default: float) -> float:
        v = t.get(key, default)
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            self.fail(path, "must be a non-negative number")
            return default
        return float(v)

    def strings(self, t: dict[str, Any], path: str, key: str,
                default: tuple[str, ...]) -> tuple[str, ...]:
        v = t.get(key, list(default))
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.fail(path, "must be an array of strings")
            return default
        return tuple(self._subst(x, path) for x in v)

    def networks(self, t: dict[str, Any], path: str, key: str) -> tuple[str, ...]:
        """Addresses or CIDR networks (10.0.0.0/8, ::1), checked now rather than on the
        first request that reads the client address."""
        values = self.strings(t, path, key, ())
        for i, v in enumerate(values):
            try:
                ipaddress.ip_network(v.strip(), strict=False)
            except ValueError:
                self.fail(f"{path}[{i}]", "must be an IP address or a network such as "
                                          "10.0.0.0/8")
        return values

    def boolean(self, t: dict[str, Any], path: str, key: str, default: bool = False) -> bool:
        v = t.get(key, default)
        if not isinstance(v, bool):
            self.fail(path, "must be true or false")
            return default
        return v

    def choice(self, t: dict[str, Any], path: str, key: str, options: tuple[str, ...]) -> str:
        value = self.string(t, path, key, options[0])
        if value not in options:
            self.fail(path, f"must be one of {', '.join(options)}")
            return options[0]
        return value

    def name(self, t: dict[str, Any], path: str) -> str:
        name = self.string(t, path, "name")
        if name and not _NAME.match(name):
            self.fail(path, "use letters, digits, '_', '-' or '.' (at most 64)")
        return name

    def renamed(self, t: dict[str, Any], prefix: str,
                renames: dict[str, str]) -> dict[str, Any]:
        """The table with each old key under its new name, and a deprecation warning naming
        the new one; both names at once is an error (which one was meant?)."""
        out = dict(t)
        for old, new in renames.items():
            if old not in out:
                continue
            value = out.pop(old)
            if new in out:
                self.fail(f"{prefix}.{old}", f"is the old name of {prefix}.{new}; set only "
                                             f"{prefix}.{new}")
            else:
                log.warning("config: %s.%s is deprecated; it is now %s.%s", prefix, old,
                            prefix, new)
                out[new] = value
        return out

    def reject_unknown(self, t: dict[str, Any], prefix: str,
                       known: set[str] | frozenset[str], what: str = "key") -> None:
        """An error for each key outside `known`, with the nearest known one as a hint:
        a typo would otherwise fall back to a default without a word."""
        known = frozenset(known)
        for k in t:
            if k not in known:
                hint = nearest(k, known)
                self.fail(f"{prefix}.{k}" if prefix else k, f"unknown {what}" + (
                    f'; did you mean "{hint}"?' if hint else
                    f" (known: {', '.join(sorted(known))})"))

    def server(self, t: dict[str, Any]) -> ServerSettings:
        self.reject_unknown(t, "server", set(ServerSettings.__dataclass_fields__))
        d = ServerSettings()
        body_timeout_s = self.number(t, "server.body_timeout_s", "body_timeout_s",
                                     d.body_timeout_s)
        if body_timeout_s <= 0:
            self.fail("server.body_timeout_s", "must be greater than 0")
            body_timeout_s = d.body_timeout_s
        return ServerSettings(
            host=self.string(t, "server.host", "host", d.host),
            port=self.integer(t, "server.port", "port", d.port, 0, 65535),
            admin_token=self.secret(t, "server.admin_token", "admin_token", required=False),
            trusted_proxies=self.networks(t, "server.trusted_proxies", "trusted_proxies"),
            body_timeout_s=body_timeout_s,
        )

    def source(self, t: dict[str, Any], p: str) -> SourceSettings:
        self.reject_unknown(t, p, set(SourceSettings.__dataclass_fields__))
        name = self.name(t, f"{p}.name")
        kind = self.choice(t, f"{p}.kind", "kind", ("server", "browser", "shopify"))
        return SourceSettings(
            name=name,
            kind=kind,
            key=self.secret(t, f"{p}.key", "key", required=kind != "shopify"),
            allowed_origins=self.strings(t, f"{p}.allowed_origins", "allowed_origins", ()),
            secret=self.secret(t, f"{p}.secret", "secret", required=kind == "shopify"),
            purchase_topic=self.choice(t, f"{p}.purchase_topic", "purchase_topic",
                                       ("orders/create", "orders/paid")),
            content_id=self.choice(t, f"{p}.content_id", "content_id",
                                   ("sku", "variant_id", "product_id")),
            rate_limit=self.number(t, f"{p}.rate_limit", "rate_limit", 0.0),
            consent_required=self.boolean(t, f"{p}.consent_required", "consent_required"),
            page_views=self.boolean(t, f"{p}.page_views", "page_views"),
            assume=self.choice(t, f"{p}.assume", "assume", ("session", "granted", "denied")),
        )

    def storage(self, t: dict[str, Any]) -> StorageSettings:
        self.reject_unknown(t, "storage", set(StorageSettings.__dataclass_fields__))
        d = StorageSettings()
        url = self.string(t, "storage.url", "url", d.url)
        try:
            storage_url.parse(url)  # as serve's open_store parses it
        except ConfigError as exc:
            self.record(exc)
        return StorageSettings(
            url=url,
            retention_days=self.integer(t, "storage.retention_days", "retention_days",
                                        d.retention_days, 3, 36500))

    def consent(self, t: dict[str, Any]) -> ConsentSettings:
        self.reject_unknown(t, "consent", set(ConsentSettings.__dataclass_fields__))
        return ConsentSettings(require_in_regions=tuple(
            x.upper() for x in self.strings(t, "consent.require_in_regions",
                                            "require_in_regions", ())))

    def sessions(self, t: dict[str, Any]) -> SessionSettings:
        t = self.renamed(t, "sessions", _RENAMED_SESSION_KEYS)
        self.reject_unknown(t, "sessions", set(SessionSettings.__dataclass_fields__))
        d = SessionSettings()
        domain = self.string(t, "sessions.cookie_domain", "cookie_domain", "").strip(".")
        if domain and not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain):
            self.fail("sessions.cookie_domain", "must be a host name like shop.example")
            domain = ""
        return SessionSettings(
            click_id_cookie_days=self.integer(t, "sessions.click_id_cookie_days",
                                              "click_id_cookie_days", d.click_id_cookie_days,
                                              1, 400),
            session_cookie_days=self.integer(t, "sessions.session_cookie_days",
                                             "session_cookie_days", d.session_cookie_days,
                                             1, 400),
            identity_window_days=self.integer(t, "sessions.identity_window_days",
                                              "identity_window_days", d.identity_window_days,
                                              1, 365),
            cookie_domain=domain.lower(),
            purchase_hold_s=self.number(t, "sessions.purchase_hold_s", "purchase_hold_s",
                                        d.purchase_hold_s),
        )

    def destination(self, t: dict[str, Any], p: str) -> DestinationSettings:
        """The keys every destination has, then its type's own through its plugin.

        With an unknown type, or its own keys wrong, `platform` is None: the errors say why.
        """
        name = self.name(t, f"{p}.name")
        dtype = self.string(t, f"{p}.type", "type", "tiktok")
        plugin = plugin_for(dtype)
        if plugin is None:
            self.fail(f"{p}.type", f"unknown destination type {dtype!r} "
                                   f"(known: {', '.join(sorted(REGISTRY))})")
        own = plugin.keys if plugin else frozenset().union(*(x.keys for x in REGISTRY.values()))
        self.reject_unknown(t, p, COMMON_DESTINATION_KEYS | own)
        default_url = plugin.default_api_url if plugin else ""
        api_url = self.string(t, f"{p}.api_url", "api_url", default_url).rstrip("/")
        if plugin and not api_url.startswith(("http://", "https://")):
            self.fail(f"{p}.api_url", "must start with http:// or https://")
        region = self.string(t, f"{p}.default_phone_region", "default_phone_region", "")
        if region and not re.fullmatch(r"[A-Za-z]{2}", region):
            self.fail(f"{p}.default_phone_region", "must be a two-letter region like DE")
            region = ""
        emap = t.get("event_map", {})
        if not isinstance(emap, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in emap.items()):
            self.fail(f"{p}.event_map", "must be a table of event name = the destination's "
                                        "event name")
            emap = {}
        max_batch = plugin.max_batch_size if plugin else 1
        return DestinationSettings(
            name=name,
            type=dtype,
            access_token=self.secret(t, f"{p}.access_token", "access_token", required=True),
            api_url=api_url,
            test_event_code=self.string(t, f"{p}.test_event_code", "test_event_code", ""),
            events=self.strings(t, f"{p}.events", "events", ("*",)),
            exclude_events=self.strings(t, f"{p}.exclude_events", "exclude_events", ()),
            exclude_order_sources=self.strings(
                t, f"{p}.exclude_order_sources", "exclude_order_sources", ()),
            batch_size=self.integer(t, f"{p}.batch_size", "batch_size", max_batch, 1, max_batch),
            max_age_days=self.integer(t, f"{p}.max_age_days", "max_age_days",
                                      DEFAULT_MAX_AGE_DAYS, 1, 3650),
            default_phone_region=region.upper(),
            event_map=dict(emap),
            platform=self._platform(plugin, t, p) if plugin else None,
        )

    def _platform(self, plugin: Plugin, t: dict[str, Any], p: str) -> object | None:
        """The type's own settings, parsed by its plugin through this reader (None when they
        are wrong). A plugin may record through `fail` and go on, or raise ConfigError."""
        before = len(self.errors)
        try:
            platform = plugin.parse_settings(self, t, p)
        except ConfigError as exc:
            self.record(exc)
            return None
        return platform if len(self.errors) == before else None

    def delivery(self, t: dict[str, Any]) -> DeliverySettings:
        d = DeliverySettings()
        self.reject_unknown(t, "delivery", set(d.__dataclass_fields__))
        return DeliverySettings(
            flush_interval_s=self.number(t, "delivery.flush_interval_s", "flush_interval_s",
                                         d.flush_interval_s),
            retry_base_s=self.number(t, "delivery.retry_base_s", "retry_base_s", d.retry_base_s),
            retry_cap_s=self.number(t, "delivery.retry_cap_s", "retry_cap_s", d.retry_cap_s),
            max_attempts=self.integer(t, "delivery.max_attempts", "max_attempts",
                                      d.max_attempts, 1, 1000),
            max_age_hours=self.number(t, "delivery.max_age_hours", "max_age_hours",
                                      d.max_age_hours),
            request_timeout_s=self.number(t, "delivery.request_timeout_s", "request_timeout_s",
                                          d.request_timeout_s),
            lease_s=self.number(t, "delivery.lease_s", "lease_s", d.lease_s),
            max_qps=self.number(t, "delivery.max_qps", "max_qps", d.max_qps),
        )
