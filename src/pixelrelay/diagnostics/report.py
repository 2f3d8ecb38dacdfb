"""Pure diagnostics: window rows -> the documented report (counts, coverage, score, alerts)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pixelrelay.destinations import REGISTRY, Plugin, purchase_names
from pixelrelay.store.codec import MATCH_KEY_BITS
from pixelrelay.store.rows import QueueRow, WindowRows

WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
TREND_BUCKETS = {"1h": 300.0, "24h": 3600.0, "7d": 6 * 3600.0}
# The match keys the store counts, in the order of its coverage rows' counts.
KEYS: tuple[str, ...] = MATCH_KEY_BITS
# Every name a purchase goes by at a registered destination type.
PURCHASE_NAMES = purchase_names()
# The ad click ids the registered types declare that the store counts: the share of
# purchases carrying each (a purchase without one cannot be tied to the ad click).
CLICK_IDS: tuple[str, ...] = tuple(dict.fromkeys(
    p.attribution_click_id for p in REGISTRY.values() if p.attribution_click_id in KEYS))


@dataclass(frozen=True, slots=True)
class Thresholds:
    rejection_rate: float = 0.05  # rejected / received
    min_events: int = 10  # rate alerts need this many events in the window
    oldest_pending_s: float = 900.0
    # Share of delivered/pending purchases carrying a destination type's ad click id.
    purchase_click_id: float = 0.5
    min_purchases: int = 10
    collect_refused: int = 10  # refused tag hits in the window (wrong key, origin)


DEFAULTS = Thresholds()


@dataclass(frozen=True, slots=True)
class DestinationFacts:
    """What the config says of a destination, shown beside its live state."""

    test_events: bool
    # event_source -> the id its events go to, as its type names them (Plugin.source_ids);
    # the report's `source_ids`.
    source_ids: dict[str, str]
    # The platform's name ("Meta") and what to check when it pauses the destination.
    platform: str = "the platform"
    setup_hint: str = ("the access token expired or revoked, or without permission for the "
                       "destination's id")
    # Its type's match-key weights (Plugin.match_weights); empty: no estimate.
    weights: Mapping[str, float] = field(default_factory=dict)
    # Its type's ad click id as the user object carries it, and the landing page's URL
    # parameter that brings it (Plugin.attribution_click_id, click_params); None: not checked.
    click_id: str | None = None
    click_param: str | None = None
    # The standard name a custom name it was sent under probably meant (Plugin.lookalike).
    lookalike: Callable[[str], str | None] | None = None
    # How the page names its Pixel's call that the browser tag makes (Bridge.pixel_call);
    # None: it has no browser Pixel.
    pixel_call: str | None = None


def facts_of(plugin: Plugin, source_ids: dict[str, str], test_events: bool) -> DestinationFacts:
    """What a destination of this registered type shows beside its live state."""
    return DestinationFacts(
        test_events=test_events, source_ids=source_ids, platform=plugin.label,
        setup_hint=plugin.setup_hint, weights=dict(plugin.match_weights),
        click_id=plugin.attribution_click_id,
        click_param=plugin.click_params[0] if plugin.click_params else None,
        pixel_call=plugin.bridge.pixel_call if plugin.bridge is not None else None,
        lookalike=plugin.lookalike)


@dataclass(frozen=True, slots=True)
class Alert:
    key: str  # stable: "paused:tiktok", "rejection_rate", ... (logged once per change)
    title: str
    detail: str
    check: str  # what to look at


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def match_score(coverage: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """0-10 from the share (0..1) of events carrying each key, weighted by `weights` (a key
    the store does not count adds nothing)."""
    return round(10.0 * sum(w * coverage.get(k, 0.0) for k, w in weights.items()), 1)


def report_weights(facts: Mapping[str, DestinationFacts]) -> dict[str, float]:
    """The weights of the report's overall score, over every counted key. Estimated match
    quality is 10 x the weighted share of events carrying each key, with a destination type's
    weights (Plugin.match_weights): an estimate, not the platform's own. Overall it is the
    first destination's (as the event-id rule follows the first destination's names), else
    the first registered type's; match_keys.by_destination has each destination's."""
    first = next((f.weights for f in facts.values() if f.weights), None)
    if first is None:
        first = next((p.match_weights for p in REGISTRY.values() if p.match_weights), {})
    return {k: first.get(k, 0.0) for k in KEYS}


_UNKNOWN = DestinationFacts(test_events=False, source_ids={})


def share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def clause(text: str | None) -> str:
    """A platform's message (often a whole sentence) to go on with more punctuation: without
    its closing full stop, so "revoked." never becomes "revoked.." or "revoked.;"."""
    return (text or "no reason given").strip().rstrip(".")


def alerts(queues: Iterable[QueueRow], now: float, received: int, rejected: int,
           purchases: int, purchases_with: Mapping[str, int],
           t: Thresholds = DEFAULTS,
           collect_refusals: Sequence[tuple[str, str | None, int]] = (),
           facts: Mapping[str, DestinationFacts] | None = None) -> list[Alert]:
    out = []
    refused = sum(n for _r, _o, n in collect_refusals)
    if refused >= t.collect_refused:
        reason, origin, n = max(collect_refusals, key=lambda x: x[2])
        check = (f"Is {origin} in the browser source's allowed_origins (scheme and host "
                 "exactly, e.g. https://www.shop.example)?" if reason == "origin_not_allowed"
                 else "Does the tag's site key (pixelrelay('init', {key})) equal a browser "
                      "source's key? An old theme may still carry a rotated key.")
        out.append(Alert(
            "collect_refused", "Browser tag hits are refused",
            f"{refused} hits of the tag were refused in the window; most: {n} "
            f"{reason.replace('_', ' ')}" + (f" from {origin}" if origin else "") + ".",
            check))
    for q in queues:
        known = (facts or {}).get(q.destination) or _UNKNOWN
        if q.paused:
            out.append(Alert(
                f"paused:{q.destination}", f"Destination {q.destination} is paused",
                f"{known.platform[:1].upper()}{known.platform[1:]} refused the token or "
                "permission: "
                f"{clause(q.paused_reason)}. {q.pending + q.in_flight} events wait in its "
                "queue.",
                f"Is {known.setup_hint}? Fix it in the config, restart (a new token resumes by "
                f"itself) or POST /v1/destinations/{q.destination}/resume."))
        if q.oldest_pending_at is not None and now - q.oldest_pending_at > t.oldest_pending_s:
            age = now - q.oldest_pending_at
            out.append(Alert(
                f"backlog:{q.destination}", f"Queue of {q.destination} is falling behind",
                f"The oldest pending event waits for {age / 60:.0f} min "
                f"(threshold {t.oldest_pending_s / 60:.0f} min).",
                f"Is {known.platform} throttling or failing (see the codes in the recent "
                "attempts), is the destination paused, or is the gateway's network to "
                f"{known.platform} down?"))
    if received >= t.min_events and rejected / received > t.rejection_rate:
        out.append(Alert(
            "rejection_rate", "Many events are rejected",
            f"{rejected} of {received} events ({rejected / received:.0%}) were rejected "
            f"(threshold {t.rejection_rate:.0%}).",
            "Read the reasons below: a wrong pixel code or event name, timestamps in "
            "milliseconds or too old, malformed currency or value, or unhashed identifiers."))
    if purchases >= t.min_purchases:
        out += _click_id_alerts(purchases, purchases_with, t, facts or {})
    return out


def _click_id_alerts(purchases: int, purchases_with: Mapping[str, int], t: Thresholds,
                     facts: Mapping[str, DestinationFacts]) -> list[Alert]:
    """One alert per ad click id of the configured destinations' types that too few
    purchases carry (key purchase_<click id>, stable as the alert keys are)."""
    by_click: dict[str, list[DestinationFacts]] = {}
    for f in facts.values():
        if f.click_id is not None and f.click_id in purchases_with:
            by_click.setdefault(f.click_id, []).append(f)
    out = []
    for click, of in by_click.items():
        n = purchases_with[click]
        if n / purchases >= t.purchase_click_id:
            continue
        platforms = " and ".join(dict.fromkeys(f.platform for f in of))
        param = of[0].click_param or click
        out.append(Alert(
            f"purchase_{click}", f"Purchases without {click}",
            f"Only {n} of {purchases} purchases carry a {click} "
            f"(threshold {t.purchase_click_id:.0%}); {platforms} cannot tie them to the ad "
            "click.",
            f"Is {param} lost on a redirect (landing page, consent banner, checkout domain)? "
            "Does the tag run on the landing page, and do orders carry the session_id?"))
    return out


def alert_changes(before: set[str], now: Sequence[Alert]) -> tuple[list[Alert], set[str]]:
    """(alerts raised since `before`, keys cleared since): what to log once per change."""
    keys = {a.key for a in now}
    return [a for a in now if a.key not in before], before - keys


def build(rows: WindowRows, queues: Sequence[QueueRow], facts: dict[str, DestinationFacts],
          window: str, now: float, t: Thresholds = DEFAULTS) -> dict[str, Any]:
    """The report of README "Diagnostics JSON"; every number is counted from `rows`."""
    events: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        return events.setdefault(name, {"event": name, "received": 0, "accepted": 0,
                                        "duplicates": 0, "merged": 0, "rejected_ingest": 0,
                                        "destinations": {}})

    for name, n in rows.accepted:
        row(name)["accepted"] += n
    for name, n, merged in rows.duplicates:
        row(name)["duplicates"] += n
        row(name)["merged"] += merged or 0
    for name, _f, _r, n in rows.ingest_rejections:
        row(name)["rejected_ingest"] += n
    for dest, name, dest_event, state, dead_reason, n in rows.deliveries:
        per = row(name)["destinations"].setdefault(dest, {
            "destination": dest, "dest_event": dest_event, "delivered": 0, "rejected": 0,
            "gave_up": 0, "suppressed": 0, "filtered": 0, "pending": 0,
            # A custom name that looks like a standard one optimises nothing at the platform.
            "looks_like": _lookalike(facts.get(dest), dest_event)})
        col = {"in_flight": "pending", "dead": "rejected" if dead_reason == "rejected"
               else "gave_up"}.get(state, state)
        if col in per:
            per[col] += n
    totals = dict.fromkeys(("received", "accepted", "duplicates", "merged", "rejected",
                            "delivered", "suppressed", "filtered", "pending", "gave_up"), 0)
    out_events = []
    for name in sorted(events):
        e = events[name]
        e["received"] = e["accepted"] + e["duplicates"] + e["rejected_ingest"]
        e["destinations"] = [e["destinations"][d] for d in sorted(e["destinations"])]
        e["rejected"] = e["rejected_ingest"] + sum(d["rejected"] for d in e["destinations"])
        for k in ("received", "accepted", "duplicates", "merged", "rejected"):
            totals[k] += e[k]
        for d in e["destinations"]:
            for k in ("delivered", "suppressed", "filtered", "pending", "gave_up"):
                totals[k] += d[k]
        out_events.append(e)

    rejections: list[dict[str, Any]] = [
        {"event": name, "stage": "ingest", "field": f, "code": None, "reason": r, "count": n}
        for name, f, r, n in rows.ingest_rejections]
    rejections += [{"event": name, "stage": dest, "field": None, "code": code,
                    "reason": message if dead_reason == "rejected"
                    else f"{dead_reason}: {message or ''}".rstrip(": "), "count": n}
                   for dest, name, dead_reason, code, message, n in rows.dead]
    rejections.sort(key=lambda r: (-r["count"], r["event"], str(r["reason"])))

    weights = report_weights(facts)
    cov_total = dict.fromkeys(KEYS, 0)
    cov_n = purchases = 0
    purchases_with = dict.fromkeys(CLICK_IDS, 0)
    by_event = []
    for name, dest_event, n, *counts in rows.coverage:
        cov = dict(zip(KEYS, (c or 0 for c in counts), strict=True))
        for k in KEYS:
            cov_total[k] += cov[k]
        cov_n += n
        if name in PURCHASE_NAMES or dest_event in PURCHASE_NAMES:
            purchases += n
            for click in CLICK_IDS:
                purchases_with[click] += cov[click]
        shares = {k: share(v, n) or 0.0 for k, v in cov.items()}
        by_event.append({"event": name, "events": n, "counts": cov, "coverage": shares,
                         "score": match_score(shares, weights)})
    overall = {k: share(v, cov_n) or 0.0 for k, v in cov_total.items()}

    server = sum(r[1] for r in rows.dedup)
    seen = sum(r[2] or 0 for r in rows.dedup)
    enr_n = sum(r[1] for r in rows.enrichment)
    enr = sum(r[2] or 0 for r in rows.enrichment)
    lat = [s for _d, s in rows.latencies]
    bucket = TREND_BUCKETS[window]
    n_buckets = int(WINDOWS[window] / bucket)

    def series(pairs: list[tuple[int, int]]) -> list[int]:
        s = [0] * n_buckets
        for b, n in pairs:
            s[min(max(b, 0), n_buckets - 1)] += n
        return s

    found = alerts(queues, now, totals["received"], totals["rejected"], purchases,
                   purchases_with, t, rows.collect_refusals, facts)
    dropped: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for _name, fld, kind, n in rows.notices:
        kinds[kind] = kinds.get(kind, 0) + n
        if kind == "unknown_field":
            dropped[fld] = dropped.get(fld, 0) + n
    return {
        "window": window, "since": now - WINDOWS[window], "generated_at": now,
        "destinations": [{
            "name": q.destination,
            "state": "paused" if q.paused else "active",
            "paused_reason": q.paused_reason, "paused_at": q.paused_at,
            "test_events": q.destination in facts and facts[q.destination].test_events,
            "source_ids": dict(facts[q.destination].source_ids)
            if q.destination in facts else {},
            "queue_depth": q.pending + q.in_flight, "in_flight": q.in_flight,
            "oldest_pending_age_s": None if q.oldest_pending_at is None
            else round(max(0.0, now - q.oldest_pending_at), 3),
        } for q in queues],
        "totals": totals,
        "events": out_events,
        "rejections": rejections,
        "match_keys": {"events": cov_n, "counts": cov_total, "coverage": overall,
                       "score": match_score(overall, weights), "weights": weights,
                       "by_event": by_event,
                       "by_destination": [{"destination": d, "weights": dict(f.weights),
                                           "score": match_score(overall, f.weights)}
                                          for d, f in facts.items() if f.weights],
                       "purchases": purchases, "purchases_with_click_id": purchases_with,
                       # Deprecated aliases, kept for one release: purchases_with_<click id>.
                       **{f"purchases_with_{k}": v for k, v in purchases_with.items()}},
        "dedup_readiness": {"server_events": server, "also_from_browser": seen,
                            "share": share(seen, server)},
        "enrichment": {"server_events": enr_n, "enriched": enr, "rate": share(enr, enr_n)},
        "latency_s": {"delivered": len(lat), "p50": _round(percentile(lat, 50)),
                      "p95": _round(percentile(lat, 95))},
        "trend": {"bucket_s": bucket, "received": series(rows.trend_received),
                  "delivered": series(rows.trend_delivered)},
        "alerts": [asdict(a) for a in found],
        "ingest_notices": {
            "dropped_fields": [{"field": f, "count": n} for f, n in
                               sorted(dropped.items(), key=lambda x: (-x[1], x[0]))[:50]],
            "unknown_fields": kinds.get("unknown_field", 0),
            "dropped_values": kinds.get("dropped_value", 0),
            "unverified_phones": kinds.get("unverified", 0)},
        "collect_refused": [{"reason": reason, "origin": origin, "count": n}
                            for reason, origin, n in sorted(rows.collect_refusals,
                                                            key=lambda x: -x[2])],
    }


def _lookalike(f: DestinationFacts | None, dest_event: str) -> str | None:
    return None if f is None or f.lookalike is None else f.lookalike(dest_event)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
