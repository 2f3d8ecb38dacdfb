"""The TikTok Events API v1.3 destination: route events at ingest, build and read requests."""

from __future__ import annotations

from collections.abc import Sequence

from pixelrelay.destinations.base import HttpRequest, HttpResponse, Outcome
from pixelrelay.destinations.plugin import Bridge, Plugin, read_bridge
from pixelrelay.destinations.settings import DestinationSettings
from pixelrelay.destinations.tiktok import codes, ids
from pixelrelay.destinations.tiktok import preflight as tiktok_preflight
from pixelrelay.destinations.tiktok import settings as tiktok_settings
from pixelrelay.destinations.tiktok.mapping import (
    APP_STANDARD_EVENTS,
    DEFAULT_MAP,
    OWN_MAP,
    PURCHASE_EVENTS,
    STANDARD_EVENTS,
    EventNames,
    bridge_table,
    lookalike_standard,
)
from pixelrelay.destinations.tiktok.payload import (
    build_body,
    build_item,
    encode_item,
    track_url,
)
from pixelrelay.model import Event, Source
from pixelrelay.secret import Secret

# The config key naming TikTok's id for each event source (event_source_id).
SOURCE_ID_KEYS = {Source.WEB: "pixel_code", Source.OFFLINE: "offline_event_set_id",
                  Source.CRM: "crm_event_set_id", Source.APP: "app_id"}
_TEST_MARK = "|test="


def batch_key(source: Source, test_event_code: str | None) -> str:
    """Events sharing a request share their event_source and their Test Events code, so a
    sender's test events never ride in a production request (nor the other way round)."""
    return source.value + (_TEST_MARK + test_event_code if test_event_code else "")


def parse_batch_key(key: str) -> tuple[Source, str | None]:
    source, _, code = key.partition(_TEST_MARK)
    return Source(source), code or None


class TikTokDestination:
    """One configured pixel and event sets; implements `destinations.base.Destination`."""

    def __init__(self, settings: DestinationSettings) -> None:
        own = settings.platform
        assert isinstance(own, tiktok_settings.TikTokSettings), own
        self.settings = settings
        self.name = settings.name
        self.batch_size = settings.batch_size
        self.names = EventNames(settings.event_map)
        self._url = track_url(settings.api_url)
        self.source_ids = {src: str(getattr(own, key)) for src, key in SOURCE_ID_KEYS.items()}

    def event_name(self, event: Event) -> str:
        names = self.names.as_sent if event.channel.platform == "tiktok" else self.names
        return names(event.name, event.source.value)

    def batch_key(self, event: Event) -> str:
        # The destination's own code sends everything to Test Events; else the sender's.
        return batch_key(event.source, self.settings.test_event_code or event.test_event_code)

    def unroutable(self, event: Event) -> str | None:
        if self.source_ids[event.source]:
            return None
        return (f"filter: no {SOURCE_ID_KEYS[event.source]} configured for source "
                f"{event.source.value} events")

    def payload(self, event: Event, dest_event: str) -> bytes:
        return encode_item(build_item(event, dest_event))

    def build_request(self, batch_key: str, payloads: Sequence[bytes]) -> HttpRequest:
        source, test_code = parse_batch_key(batch_key)
        # Rows queued before a test_event_code was configured carry no code in their key.
        test_code = test_code or self.settings.test_event_code or None
        body = build_body(event_source_id=self.source_ids[source], event_source=source.value,
                          items=payloads, test_event_code=test_code)
        return HttpRequest(self._url, {"Access-Token": self.settings.access_token.reveal(),
                                       "Content-Type": "application/json"}, body)

    def classify(self, response: HttpResponse) -> Outcome:
        return codes.classify(response)


def _source_ids(d: DestinationSettings) -> dict[str, str]:
    return {source.value: str(getattr(d.platform, key))
            for source, key in SOURCE_ID_KEYS.items() if getattr(d.platform, key)}


def _sandbox(base_url: str) -> DestinationSettings:
    """The destination `serve` uses without a config: the in-process emulator as TikTok."""
    return DestinationSettings(
        name="sandbox", type="tiktok", access_token=Secret("sandbox-access-token"),
        api_url=f"{base_url}/_emulator", batch_size=100,
        platform=tiktok_settings.TikTokSettings(pixel_code="SANDBOXPIXEL000"))


PLUGIN = Plugin(
    type="tiktok", label="TikTok",
    setup_hint="the access token expired or revoked, the pixel code wrong, or the token "
               "without permission for this pixel",
    keys=tiktok_settings.KEYS, default_api_url=tiktok_settings.DEFAULT_API_URL,
    max_batch_size=tiktok_settings.MAX_BATCH_SIZE, parse_settings=tiktok_settings.parse_settings,
    build=TikTokDestination, names=EventNames,
    standard_events=STANDARD_EVENTS | APP_STANDARD_EVENTS, purchase_events=PURCHASE_EVENTS,
    default_incoming=frozenset(DEFAULT_MAP), default_names=frozenset(DEFAULT_MAP.values()),
    known_codes=codes.KNOWN_CODES, hash_user=None,
    renamed_session_keys={"ttclid_cookie_days": "click_id_cookie_days"},
    sandbox=_sandbox, preflight=tiktok_preflight.findings,
    emulator_ids=lambda d: d.platform.ids(), source_ids=_source_ids,
    bridge=Bridge(read_bridge(__name__), bridge_table, pixel_call="ttq.track"),
    # Its ids are kept with sessions by their declaration (no session_ids hook).
    ids=ids.IDS, click_params=(ids.CLICK_PARAM,), browser_cookies=((ids.TTP_COOKIE, "ttp"),),
    # TikTok matches best on ttclid (the click itself) and hashed email/phone; ttp,
    # external_id and IP + user agent help less, and name, zip and address only together with
    # others. An estimate, not TikTok's own EMQ.
    match_weights={"email": 0.22, "phone": 0.18, "ttclid": 0.22, "external_id": 0.08,
                   "ttp": 0.08, "ip_ua": 0.10, "first_name": 0.03, "last_name": 0.03,
                   "zip_code": 0.03, "city": 0.01, "state": 0.01, "country": 0.01},
    attribution_click_id="ttclid", concept_names=OWN_MAP, lookalike=lookalike_standard)

__all__ = ["PLUGIN", "TikTokDestination", "batch_key", "parse_batch_key"]
