"""Immutable canonical types shared from ingest to delivery.

An `Event` never holds raw personal data: email, phone and external_id are SHA-256 hex
digests by the time an Event exists (the parser hashes them while building it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import field, fields, replace
from enum import StrEnum
from operator import attrgetter
from typing import Any

from pixelrelay.errors import Notice
from pixelrelay.records import record

JSON = dict[str, Any]


class Source(StrEnum):
    WEB = "web"
    APP = "app"
    OFFLINE = "offline"
    CRM = "crm"


class Channel(StrEnum):
    """The door an event came in by; diagnostics compare browser and server copies by it."""

    SERVER = "server"  # POST /v1/events with a server key, the Python client, import
    BROWSER = "browser"  # the tag, through /v1/collect or a site key
    SHOPIFY = "shopify"
    TIKTOK_API = "tiktok_api"  # the drop-in /open_api/v1.3/event/track/
    META_API = "meta_api"  # the drop-in /{version}/{pixel_id}/events (Meta's Graph API)

    @property
    def platform(self) -> str | None:
        """For a drop-in endpoint, the destination type whose request format (and event
        names) it takes: names sent that way are that platform's own already."""
        return _DROP_IN.get(self)


_DROP_IN = {Channel.TIKTOK_API: "tiktok", Channel.META_API: "meta"}
# Drop-ins whose senders hash phones otherwise than the stored hash set (E.164 with its +):
# such a digest serves only its own platform (Event.plain), never the stored set.
FOREIGN_PHONE_HASHES = frozenset({Channel.META_API})


# Where a conversion can happen, as senders and ad platforms name it (a phone call, a store,
# a chat...): finer than Source, which says which kind of id the event carries.
ACTION_SOURCES = frozenset({"website", "app", "email", "phone_call", "chat", "physical_store",
                            "system_generated", "business_messaging", "other"})


class ConsentState(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"


@record
class Consent:
    marketing: ConsentState | None = None
    ad_user_data: ConsentState | None = None
    ad_personalization: ConsentState | None = None
    region: str | None = None  # ISO 3166 alpha-2 (or region code) the visitor is in
    # Where the states come from when the event did not state them: "session" (the visitor's
    # answer, restored from their session), "region" (none given, and the region requires
    # consent), "assumed" (a source's `assume`); None: the event's own.
    basis: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.marketing is None and self.ad_user_data is None and (
            self.ad_personalization is None
        )


@record
class IdKey:
    """A click or browser id a destination type declares (Plugin.ids), carried as
    `user.<key>` by the API, the tag, the stored body and a session's click_ids map."""

    key: str  # its name under `user`
    description: str  # what it is, as the API reference shows it
    max_len: int = 512  # the parser's limit
    # A landing URL's query parameter that carries the id as is (an ad click id): a server
    # event's page.url gives it, and the browser source keeps it in the cookie prx_<param>.
    url_param: str | None = None
    # On a web event, `ad.callback` stands in for a missing one.
    ad_callback: bool = False
    # For an id made from a landing URL's parameter rather than carried as is (Meta's fbc from
    # an fbclid): the parameter, and how the id is made of its value and the click's time in
    # ms (None: the value is not usable). A server event's page.url gives it.
    built_from: tuple[str, Callable[[str, int], str | None]] | None = None
    # Its bit in events.match_keys (the stored format: a bit never moves); None: not counted.
    match_key_bit: int | None = None


# The ids the registered destination types declare, by key: filled by pixelrelay.destinations
# when it is imported (the layers below it, the parser among them, cannot import it).
_DECLARED_IDS: dict[str, IdKey] = {}


def declare_ids(keys: Iterable[IdKey]) -> None:
    for k in keys:
        known = _DECLARED_IDS.get(k.key)
        if known is not None and known != k:
            raise ValueError(f"user.{k.key} is declared twice, differently")
        _DECLARED_IDS[k.key] = k


def declared_ids() -> Mapping[str, IdKey]:
    """user key -> IdKey, for every id the registered destination types declare."""
    return _DECLARED_IDS


ClickIds = tuple[tuple[str, str], ...]


def click_ids_of(ids: Mapping[str, str]) -> ClickIds:
    """A map of ids in User.click_ids form: (key, value) pairs sorted by key, no empty ones."""
    return tuple(sorted((k, v) for k, v in ids.items() if v))


@record
class User:
    """Match keys. email, phone, external_id, first_name, last_name, zip_code, idfa and gaid
    are lowercase SHA-256 hex digests; city, state and country are normalised, not hashed;
    the rest is context passed on as is. `click_ids` holds the click and browser ids the
    destination types declare (IdKey), by key."""

    email: tuple[str, ...] = ()
    phone: tuple[str, ...] = ()
    external_id: tuple[str, ...] = ()
    click_ids: ClickIds = ()  # (user key, value), sorted by key: see click_ids_of
    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    zip_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    idfa: str | None = None  # app events (iOS advertising id)
    idfv: str | None = None
    gaid: str | None = None  # app events (Android advertising id)
    att_status: str | None = None  # iOS App Tracking Transparency status

    def click_id(self, key: str) -> str | None:
        """The click or browser id under `key` (user.<key>), if the user has one."""
        for k, v in self.click_ids:
            if k == key:
                return v
        return None

    def ids(self) -> dict[str, str]:
        """The click and browser ids as a map."""
        return dict(self.click_ids)

    def with_click_ids(self, ids: Mapping[str, str]) -> User:
        """The user with `ids` over its own (an empty value removes one)."""
        merged = dict(self.click_ids)
        merged.update(ids)
        return replace(self, click_ids=click_ids_of(merged))

    def without_personal_data(self) -> User:
        """What consent `ad_user_data: denied` leaves: no identifier of the person, their
        address or their device; click and browser context stay."""
        return User(click_ids=self.click_ids, ip=self.ip, user_agent=self.user_agent,
                    locale=self.locale, att_status=self.att_status)

    @property
    def has_personal_data(self) -> bool:
        return self != self.without_personal_data()

    def given(self) -> dict[str, Any]:
        """The keys that hold a value, by name in field order, the click ids by their own
        keys in click_ids' place (the id lists as tuples): what the stored body and
        TikTok's item carry of the user. One C call reads the other fields."""
        out: dict[str, Any] = {k: v for k, v in zip(_LIST_KEYS, _list_values(self), strict=True)
                               if v}
        if self.click_ids:
            out.update(self.click_ids)
        out.update((k, v) for k, v in zip(_SCALAR_KEYS, _scalar_values(self), strict=True)
                   if v is not None)
        return out


_USER_KEYS = tuple(f.name for f in fields(User))
_LIST_KEYS = ("email", "phone", "external_id")
_SCALAR_KEYS = tuple(k for k in _USER_KEYS if k not in (*_LIST_KEYS, "click_ids"))
_list_values = attrgetter(*_LIST_KEYS)
_scalar_values = attrgetter(*_SCALAR_KEYS)


@record
class PlainUser:
    """The personal match keys as normalised plaintext, in memory only: never stored, encoded
    or logged. Each destination hashes them its own way at ingest. Email is trimmed and
    lower-cased, phone in E.164 with `+`, the rest trimmed; a value that is a SHA-256 digest
    already is the sender's, in the format of the door it came in by (Event.channel)."""

    email: tuple[str, ...] = ()
    phone: tuple[str, ...] = ()
    external_id: tuple[str, ...] = ()
    first_name: str | None = None
    last_name: str | None = None
    zip_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None


@record
class Page:
    url: str | None = None
    referrer: str | None = None


@record
class App:
    """`app` of an app event: the store id (or package name) of the app, name, version."""

    app_id: str
    app_name: str | None = None
    app_version: str | None = None


@record
class Ad:
    """`ad` of an app event: attribution details, passed to TikTok as given."""

    callback: str | None = None
    campaign_id: str | None = None
    ad_id: str | None = None
    creative_id: str | None = None
    is_retargeting: bool | None = None
    attributed: bool | None = None
    attribution_type: str | None = None
    attribution_provider: str | None = None


@record
class Lead:
    """`lead` of a CRM event: TikTok's lead id and the CRM it came from."""

    lead_id: str
    lead_event_source: str | None = None


@record
class Event:
    """One validated, normalised, hashed event as pixelrelay keeps it."""

    name: str  # the incoming name (mapped per destination later)
    event_id: str
    event_time: int  # Unix seconds
    source: Source = Source.WEB
    user: User = field(default_factory=User)
    page: Page = field(default_factory=Page)
    properties: JSON = field(default_factory=dict)  # validated JSON; custom keys pass through
    consent: Consent = field(default_factory=Consent)
    session_id: str | None = None
    order_source: str | None = None
    # Where the conversion happened as the sender said (one of ACTION_SOURCES): a destination
    # that tells these apart sends it; the others go by `source`.
    action_source: str | None = None
    received_at: float = 0.0
    warnings: tuple[Notice, ...] = ()  # what ingest dropped or could not verify, no values
    channel: Channel = Channel.SERVER  # how it reached us
    enriched_from: str | None = None  # "session" | "link" | "identity": context was restored
    app: App | None = None
    ad: Ad | None = None
    lead: Lead | None = None
    device: JSON = field(default_factory=dict)  # client hints, as TikTok's sGTM sends them
    limited_data_use: bool | None = None  # as the sender set it; consent may still force it
    test_event_code: str | None = None  # the sender's: this event goes to Test Events
    copies: tuple[str, ...] = ()  # channels of later copies merged into this one
    # The personal match keys in plaintext for the destinations to hash (in memory only:
    # the codec never writes it; an event read back from the store has None).
    plain: PlainUser | None = field(default=None, compare=False)
    # The user objects the destination types that hash their own way made of `plain` after
    # consent (type -> its hashed keys, each a list of digests): stored with the event, so a
    # replay or a later copy's merge sends them what it hashed, not a set in another format.
    hashed_users: JSON = field(default_factory=dict)


class DeliveryState(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPPRESSED = "suppressed"  # consent said no; kept with the reason, never sent
    FILTERED = "filtered"  # a destination filter excluded it; never sent


@record
class Route:
    """What one destination will do with one event, decided at ingest.

    `payload` is the destination's serialised item (for TikTok: one `data[]` object as
    JSON bytes) when state is PENDING, else None. `reason` explains suppressed/filtered.
    """

    destination: str
    dest_event: str  # the destination's event name (TikTok's mapped name)
    state: DeliveryState
    payload: bytes | None = None
    reason: str | None = None
    batch_key: str = "web"  # events sharing a request must share this (TikTok: event_source)
    not_before: float | None = None  # held until then (a browser purchase awaits its order)
