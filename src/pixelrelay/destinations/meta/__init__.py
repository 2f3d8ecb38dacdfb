"""The Meta Conversions API destination (Graph API POST /{version}/{pixel_id}/events)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pixelrelay.destinations.base import HttpRequest, HttpResponse, Outcome, Unsendable
from pixelrelay.destinations.meta import clickids, codes, names, payload
from pixelrelay.destinations.meta import settings as meta_settings
from pixelrelay.destinations.meta.hashing import MetaUserInput, PreHashFormat, hash_user
from pixelrelay.destinations.plugin import Bridge, Plugin, read_bridge
from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.model import ConsentState, Event, Source
from pixelrelay.secret import Secret

TYPE = "meta"
_TEST_MARK = "test="
_FORMAT_OF_DOOR = {"meta": PreHashFormat.META, "tiktok": PreHashFormat.TIKTOK}


class MetaDestination:
    """One configured pixel (dataset); implements `destinations.base.Destination`."""

    def __init__(self, settings: DestinationSettings) -> None:
        own = settings.platform
        assert isinstance(own, meta_settings.MetaSettings), own
        self.settings = settings
        self.name = settings.name
        self.batch_size = settings.batch_size
        self.names = names.EventNames(settings.event_map)
        self._url = payload.events_url(settings.api_url, own.api_version, own.pixel_id)

    def event_name(self, event: Event) -> str:
        given = self.names.as_sent if event.channel.platform == "meta" else self.names
        return given(event.name, event.source.value)

    def batch_key(self, event: Event) -> str:
        # Test Events go in requests of their own: test_event_code is the request's.
        code = self.settings.test_event_code or event.test_event_code
        return _TEST_MARK + code if code else "live"

    def unroutable(self, event: Event) -> str | None:
        if event.source is Source.APP:
            return "filter: app events need Meta's app_data, which pixelrelay does not build"
        return None

    def payload(self, event: Event, dest_event: str) -> bytes:
        u = event.user
        user = payload.user_data(_stored_or_hashed(event), client_ip_address=u.ip,
                                 client_user_agent=u.user_agent, fbc=u.click_id("fbc"),
                                 fbp=u.click_id("fbp"))
        built = payload.build_event(
            event_name=dest_event, event_time=event.event_time, event_id=event.event_id,
            action_source=_action_source(event), user_data=user,
            event_source_url=event.page.url, referrer_url=event.page.referrer,
            custom_data=_custom_data(event.properties),
            limited_data_use=bool(event.limited_data_use)
            or event.consent.ad_personalization is ConsentState.DENIED)
        problem = payload.event_problem(built)
        if problem is not None:  # Meta would refuse the whole request for it
            raise Unsendable(f"meta: {problem}")
        return payload.encode_event(built)

    def build_request(self, batch_key: str, payloads: Sequence[bytes]) -> HttpRequest:
        code = batch_key[len(_TEST_MARK):] if batch_key.startswith(_TEST_MARK) else None
        body = payload.build_body(payloads, test_event_code=code)
        return HttpRequest(self._url, payload.request_headers(
            self.settings.access_token.reveal()), body)

    def classify(self, response: HttpResponse) -> Outcome:
        return codes.classify(response)


def _action_source(event: Event) -> str:
    """Where the event says it happened (a sender's action_source: a phone call, a chat, a
    store...), else what its source means. website only for events that carry what Meta
    requires of one (the page URL and the user agent): without them (a backend's order) it
    goes as system_generated rather than have Meta refuse its whole request."""
    chosen = payload.action_source(event.source.value, event.action_source)
    if chosen == "website" and not (event.page.url and event.user.user_agent):
        return "system_generated"
    return chosen


def _hashed_user(event: Event) -> dict[str, list[str]]:
    """Meta's user_data keys of the event, hashed Meta's way: what ingest stores beside it."""
    return hash_user(_user_input(event)).user_data


def _stored_or_hashed(event: Event) -> dict[str, list[str]]:
    """The keys ingest hashed for Meta and stored (Event.hashed_users), else hashed now."""
    stored: dict[str, list[str]] | None = event.hashed_users.get(TYPE)
    return stored if stored is not None else _hashed_user(event)


def _user_input(event: Event) -> MetaUserInput:
    """The plaintext view when ingest kept one, else the gateway's hash set (an event stored
    before Meta's own user object was): emails and ids hash alike everywhere, the rest cannot
    be reused."""
    p = event.plain
    if p is not None:
        fmt = _FORMAT_OF_DOOR.get(event.channel.platform or "", PreHashFormat.UNKNOWN)
        return MetaUserInput(emails=p.email, phones=p.phone, first_name=p.first_name,
                             last_name=p.last_name, city=p.city, state=p.state, zip=p.zip_code,
                             country=p.country, external_ids=p.external_id, prehash_format=fmt)
    u = event.user
    return MetaUserInput(emails=u.email, external_ids=u.external_id, city=u.city,
                         state=u.state, country=u.country,
                         prehash_format=PreHashFormat.TIKTOK)


def _custom_data(props: dict[str, Any]) -> dict[str, Any]:
    contents = [payload.Item(id=str(c["content_id"]), quantity=c.get("quantity"),
                             item_price=c.get("price"), title=c.get("content_name"),
                             category=c.get("content_category"), brand=c.get("brand"))
                for c in props.get("contents") or () if c.get("content_id") is not None]
    ids = props.get("content_ids") or [i.id for i in contents]
    named = payload.custom_data(
        value=props.get("value"), currency=props.get("currency"), contents=contents,
        content_ids=ids, content_type=props.get("content_type"),
        content_name=_text(props.get("content_name")), order_id=props.get("order_id"),
        num_items=props.get("num_items"), search_string=props.get("search_string"),
        status=_text(props.get("status")))
    # The sender's custom properties go as they are (Meta takes custom keys in custom_data);
    # Meta's other standard keys only in the type Meta checks, as one bad key would make it
    # refuse the whole request.
    extra = {k: v for k, v in props.items() if k not in _READ_PROPERTIES and k not in named
             and _STANDARD_EXTRA.get(k, _any)(v)}
    return {**named, **extra}


def _text(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _any(v: object) -> bool:
    return True


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _string(v: object) -> bool:
    return isinstance(v, str)


def _delivery_category(v: object) -> bool:
    return v in ("in_store", "curbside", "home_delivery")


_STANDARD_EXTRA: dict[str, Callable[[object], bool]] = {
    "predicted_ltv": _number, "net_revenue": _number, "content_category": _string,
    "item_number": _string, "delivery_category": _delivery_category}


# Properties read above, or the event object's own spellings of them (query is the older name
# of search_string), or not the platform's business (the cart and checkout tokens).
_READ_PROPERTIES = frozenset({
    "value", "currency", "contents", "content_ids", "content_type", "content_name", "order_id",
    "num_items", "search_string", "query", "status", "cart_token", "checkout_token"})


def _sandbox(base_url: str) -> DestinationSettings:
    """The Meta destination `serve` uses without a config: its in-process emulator."""
    return meta_settings.meta_destination(
        name="sandbox-meta", access_token=Secret("sandbox-meta-token"),
        pixel_id="100000000000001", api_url=f"{base_url}/_meta", batch_size=100)


def _findings(d: DestinationSettings) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for incoming, target in d.event_map.items():
        if target not in names.STANDARD_EVENTS:
            out.append(("warning", f"event_map.{incoming}",
                        f"{target!r} is not a Meta standard event name: it is sent as a "
                        "custom event"))
    return out


PLUGIN = Plugin(
    type=TYPE, label="Meta",
    setup_hint="the access token expired or revoked, the pixel_id wrong, or the token "
               "without permission for this dataset",
    keys=meta_settings.KEYS, default_api_url=meta_settings.DEFAULT_API_URL,
    max_batch_size=meta_settings.MAX_BATCH_SIZE, parse_settings=meta_settings.parse_settings,
    build=MetaDestination, names=names.EventNames, standard_events=names.STANDARD_EVENTS,
    purchase_events=names.PURCHASE_EVENTS, default_incoming=frozenset(names.DEFAULT_MAP),
    default_names=frozenset(names.DEFAULT_MAP.values()), known_codes=codes.KNOWN_CODES,
    hash_user=_hashed_user, sandbox=_sandbox, preflight=_findings,
    emulator_ids=lambda d: (d.platform.pixel_id,),
    source_ids=lambda d: {"web": d.platform.pixel_id},
    bridge=Bridge(read_bridge(__name__), names.bridge_table, pixel_call="fbq('track')"),
    ids=clickids.IDS, click_params=(clickids.CLICK_PARAM,),
    browser_cookies=((clickids.FBP_COOKIE, "fbp"), (clickids.FBC_COOKIE, "fbc")),
    session_ids=clickids.session_ids,
    # meta-capi.md 6: Meta publishes no weights; practitioners rank em > ph > external_id ~
    # fbc > fbp > client_ip_address + client_user_agent > names, zip, city, country. An
    # estimate in that order, not Meta's EMQ.
    match_weights={"email": 0.25, "phone": 0.20, "external_id": 0.13, "fbc": 0.13,
                   "fbp": 0.10, "ip_ua": 0.10, "first_name": 0.02, "last_name": 0.02,
                   "zip_code": 0.02, "city": 0.01, "state": 0.01, "country": 0.01},
    attribution_click_id="fbc", concept_names=names.CONCEPT_NAMES,
    adopt_names=names.adopt)

__all__ = ["PLUGIN", "MetaDestination"]
