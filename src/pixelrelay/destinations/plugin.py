"""What a destination type registers (one REGISTRY line): its settings, its factory, its names
and the facts shared code asks of it, so that nothing outside its folder names the platform."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from pixelrelay.destinations.base import Destination
from pixelrelay.destinations.settings import DestinationSettings, SettingsReader
from pixelrelay.model import JSON, Event, IdKey
from pixelrelay.records import record


class Names(Protocol):
    """A destination's event names: incoming name (and source: web, app...) -> its name."""

    def __call__(self, name: str, source: str = "web") -> str: ...

    def as_sent(self, name: str, source: str = "web") -> str:
        """For a name that already is the platform's own (a drop-in endpoint's): only an
        exact event_map entry renames it."""
        ...

    def web_table(self) -> tuple[dict[str, str], dict[str, str]]:
        """(exact overrides, name_key -> name) for web events: what the browser tag embeds
        to name an event exactly as the server will."""
        ...


class _SameNames:
    """Names without a destination: each name as it came."""

    def __call__(self, name: str, source: str = "web") -> str:
        return name

    def as_sent(self, name: str, source: str = "web") -> str:
        return name

    def web_table(self) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {}


SAME_NAMES: Names = _SameNames()


@record
class BrowserHit:
    """What a browser hit shows of a visitor's click and browser ids, for `Plugin.session_ids`:
    the page and its referrer, the request's cookies, the body's `user` object, the time (ms)
    and the ids the visitor's session already holds."""

    url: str | None
    referrer: str | None
    cookies: Mapping[str, str] = field(hash=False)
    user: Mapping[str, Any] = field(hash=False)
    now_ms: int
    previous: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class Bridge:
    """A destination type's part of the browser tag: a script calling the platform's own
    Pixel (each type's own global) under the server's names and event_ids, and the data it is
    served with. The script is one statement, `bridge('<type>', function (w, table, lib)
    {...})`, run inside the tag (or the Shopify pixel) before the page's first command."""

    script: str
    # From a destination's event_map: the JSON-able table the script reads (at least "map"
    # and "keys", as Names.web_table gives them).
    table: Callable[[Mapping[str, str]], dict[str, object]]
    # How the page names the Pixel's call the script makes for an event ("fbq('track')"),
    # for the dashboard's advice on deduplication.
    pixel_call: str = "the Pixel"


def read_bridge(package: str) -> str:
    """The bridge.js of a destination's folder (shipped as package data)."""
    return (resources.files(package) / "bridge.js").read_text("utf-8")


@dataclass(frozen=True)
class Plugin:
    type: str
    label: str  # the platform's name as people know it ("TikTok"), for alerts and pages
    setup_hint: str  # what to check when it refuses the token or a permission (a pause)
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
    # Its user object of hashed personal keys, made from the plaintext view (Event.plain)
    # after consent and stored with the event (Event.hashed_users[type]). None: the stored
    # hash set (SHA-256 of the normalised values, phone E.164 with +) is its own.
    hash_user: Callable[[Event], JSON] | None
    # A destination on this type's emulator in the `serve` process at the base URL (sandbox).
    sandbox: Callable[[str], DestinationSettings]
    # `check`'s findings about one destination: (error | warning, key under it, message).
    preflight: Callable[[DestinationSettings], list[tuple[str, str, str]]]
    # The ids its emulator must accept for this destination (sandbox and tests).
    emulator_ids: Callable[[DestinationSettings], tuple[str, ...]]
    # The platform's id for each event source it sends (web, app...), as the page shows them.
    source_ids: Callable[[DestinationSettings], dict[str, str]]
    # Its part of the browser tag and of the Shopify pixel (None: it has no browser Pixel).
    bridge: Bridge | None = None
    # The click and browser ids it declares, each carried as user.<key> (the API, the stored
    # body, a session's click_ids): their limits, how a landing URL gives them, their docs.
    ids: tuple[IdKey, ...] = ()
    # URL query parameters that are its ad click ids (a landing page's).
    click_params: tuple[str, ...] = ()
    # (cookie, user key): first-party cookies its Pixel sets, sent by the tag and the Shopify
    # pixel as user.<key>, read by the server from the request's cookies as well.
    browser_cookies: tuple[tuple[str, str], ...] = ()
    # The ids (user key -> value) a browser hit gives the visitor's session, which later
    # events of that session get where they have none (pipeline.enrich). None: the browser
    # source keeps its ids by their declaration (a click id's url_param from the landing URL
    # or the gateway's cookie prx_<param>, a browser id from its cookie).
    session_ids: Callable[[BrowserHit], dict[str, str]] | None = None
    # [sessions] keys once named for this platform (old -> new): read for one more release.
    renamed_session_keys: Mapping[str, str] = field(default_factory=dict)
    # Diagnostics: for a custom name it sends, the standard name it probably meant (a hint
    # on the page: a custom event optimises nothing), else None.
    lookalike: Callable[[str], str | None] | None = None
    # Diagnostics: the weight of each match key (a key of diagnostics.report.KEYS, or a user
    # key of its click and browser ids) in its estimated match quality, 0-10 = 10 x the sum of
    # weight x share of events carrying the key; the weights sum to 1.
    match_weights: Mapping[str, float] = field(default_factory=dict)
    # The user key of its ad click id (one of click_params, as the user object carries it):
    # a purchase without it cannot be tied to the ad click, which the dashboard flags.
    attribution_click_id: str | None = None
    # Its name for each of pixelrelay's own event names (SPEC 4: PageView, Purchase, Lead,
    # SignUp), the concepts every type names. Another registered type's name for one of them
    # is an incoming name this type maps to its own (a sender's event named for that platform).
    concept_names: Mapping[str, str] = field(default_factory=dict)
    # Takes those names (another type's name -> its own) into its defaults once, when the
    # registry is built, and gives the incoming names its defaults then know (its
    # default_incoming from then on). None: its defaults need none.
    adopt_names: Callable[[Mapping[str, str]], frozenset[str]] | None = None

    @property
    def hashes_plaintext(self) -> bool:
        return self.hash_user is not None
