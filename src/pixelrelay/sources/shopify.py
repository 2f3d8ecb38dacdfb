"""POST /v1/webhooks/shopify/{source}: HMAC-checked Shopify webhooks -> one event -> ingest."""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pixelrelay.config import Settings, SourceSettings
from pixelrelay.errors import StoreUnavailable
from pixelrelay.ingest import Ingestor
from pixelrelay.model import Channel, Consent, ConsentState
from pixelrelay.pipeline import nesting
from pixelrelay.sources.shopify_map import (
    ShopifyPayloadError,
    hmac_valid,
    ignore_reason,
    order_to_event,
)
from pixelrelay.web.credential_guard import credential_failed
from pixelrelay.web.http import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    json_response,
    problem_response,
    read_body,
    too_deep,
    too_large,
)
from pixelrelay.web.store_guard import NOT_COMMITTED, unavailable

log = logging.getLogger(__name__)
_G, _D = ConsentState.GRANTED, ConsentState.DENIED
# A source's `assume`: the consent of an order whose visitor gave no answer we know of.
# "session" adds nothing: the session's answer, else the region rule, decides.
ASSUMED = {"granted": Consent(_G, _G, _G), "denied": Consent(_D, _D, _D)}


class ShopifyWebhookEndpoint:
    """Answers within Shopify's 5 s: verify, map, one ingest commit, reply.

    Shopify redelivers the same payload until it gets a 2xx; the event_id derived from the
    order id makes every redelivery a duplicate in the store, which is the deduplication.
    """

    def __init__(self, ingestor: Ingestor, settings: Settings) -> None:
        self.ingestor = ingestor
        self.sources: dict[str, SourceSettings] = {
            s.name: s for s in settings.sources if s.kind == "shopify"}
        # The same name mapping the ingestor derives order event ids with (first
        # destination), so an order's id here equals the one the browser tag sends.
        self._id_name = lambda name: ingestor.id_names(name)

    async def __call__(self, request: Request) -> Response:
        source = self.sources.get(request.path_params.get("source", ""))
        if source is None:
            return problem_response(404, "not_found", "no Shopify source of that name")
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return too_large(MAX_BODY_BYTES)
        # Checked over the raw bytes: any re-encoding of the JSON would change the digest.
        signature = request.headers.get("x-shopify-hmac-sha256")
        if not hmac_valid(body, source.secret.reveal(), signature):
            if signature:
                credential_failed(request)
            return problem_response(401, "unauthorized",
                                    "X-Shopify-Hmac-Sha256 is missing or does not match")
        topic = request.headers.get("x-shopify-topic", "").strip()
        webhook_id = request.headers.get("x-shopify-webhook-id", "")
        reason = ignore_reason(topic, source.purchase_topic)
        if reason is not None:
            return json_response({"accepted": 0, "duplicates": 0, "event_ids": [],
                                  "ignored": reason})
        try:
            event = order_to_event(nesting.loads(body), topic, source.content_id,
                                   self.ingestor.clock.now(), dest_name=self._id_name)
        except orjson.JSONDecodeError as exc:
            return problem_response(400, "malformed_json", f"body is not valid JSON: {exc}")
        except nesting.TooDeep as exc:
            return too_deep(exc)
        except ShopifyPayloadError as exc:
            return problem_response(400, "unmappable", exc.reason)
        if event is None:  # ignore_reason admitted the topic, so this is a programming error
            return problem_response(500, "internal", f"topic {topic} has no mapping")
        try:
            result = await self.ingestor.accept([event], channel=Channel.SHOPIFY,
                                                assume=ASSUMED.get(source.assume))
        except StoreUnavailable as exc:  # Shopify retries a webhook for 48 h
            return unavailable(request, exc, NOT_COMMITTED)
        if result.rejected:
            # Logged without values: the problems name fields, the event holds personal data.
            log.warning("shopify %s webhook %s (%s) rejected: %s", source.name, webhook_id,
                        topic, [p.as_dict() for r in result.rejected for p in r.problems])
            return problem_response(422, "rejected", "the mapped event was refused",
                                    event_ids=result.event_ids,
                                    errors=[p.as_dict() for r in result.rejected
                                            for p in r.problems])
        answer: dict[str, object] = {"accepted": result.accepted,
                                     "duplicates": result.duplicates,
                                     "event_ids": result.event_ids}
        if result.warnings:
            answer["warnings"] = result.warnings
        return json_response(answer)
