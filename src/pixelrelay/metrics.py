"""Prometheus metrics, each defined once on pixelrelay's own registry; queue gauges from the DB."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from pixelrelay.model import DeliveryState

if TYPE_CHECKING:  # types only: metrics sits below the store (destinations count through it)
    from pixelrelay.store.base import Claimed, Finished
    from pixelrelay.store.rows import QueueRow

# Every counter would also export a `_created` series (a timestamp per label set) that
# doubles the scrape and that no dashboard here uses.
disable_created_metrics()  # type: ignore[no-untyped-call]
# A dedicated registry: tests and several apps in one process never collide on the global one.
REGISTRY = CollectorRegistry(auto_describe=True)

# The one rule for `event` on every event counter: the name the destination receives (after
# its event_map). Counts with no destination (ingest rejections, duplicates) use the incoming
# name through the first destination's names.
# Only names of a known vocabulary become label values; any other is `other` (event_label).
_EVENT = ("; event = the destination's name (no destination: the first destination's), "
          "`other` for a name that is neither standard nor in a destination's event_map")
# Counter -> the position of its `event` label, which count_all bounds.
_EVENT_AT: dict[Counter, int] = {}


def _event_counter(name: str, documentation: str, labels: list[str]) -> Counter:
    counter = Counter(name, documentation + _EVENT, labels, registry=REGISTRY)
    _EVENT_AT[counter] = labels.index("event")
    return counter


RECEIVED = _event_counter("pixelrelay_events_received", "Events accepted at ingest, per route "
                          "(suppressed and filtered included)", ["destination", "event"])
DUPLICATES = _event_counter("pixelrelay_events_duplicate",
                            "Repeats absorbed by the 48 h idempotency", ["event"])
REJECTED = _event_counter("pixelrelay_events_rejected", "Events refused: stage=ingest "
                          "(validation, destination empty) or destination (TikTok)",
                          ["destination", "event", "stage"])
SUPPRESSED = _event_counter("pixelrelay_events_suppressed", "Routes suppressed by consent",
                            ["destination", "event"])
FILTERED = _event_counter("pixelrelay_events_filtered", "Routes excluded by a destination "
                          "filter", ["destination", "event"])
DELIVERED = _event_counter("pixelrelay_events_delivered", "Events TikTok accepted",
                           ["destination", "event"])
RETRIED = _event_counter("pixelrelay_events_retried", "Deliveries scheduled for another "
                         "attempt", ["destination", "event"])
GAVE_UP = _event_counter("pixelrelay_events_gave_up", "Deliveries dead without a rejection "
                         "(expired, max attempts)", ["destination", "event", "reason"])
_RESPONSES = ("Answers per destination and platform code (or http_<status> / network when "
              "there was no code; `other` for a code pixelrelay does not know)")
DESTINATION_RESPONSES = Counter("pixelrelay_destination_responses", _RESPONSES,
                                ["destination", "code"], registry=REGISTRY)
# The metric's name before destinations other than TikTok: kept, with the same counts, for
# one release so that dashboards can move over.
_OLD_RESPONSES = Counter("pixelrelay_tiktok_responses", "Deprecated alias of "
                         "pixelrelay_destination_responses. " + _RESPONSES,
                         ["destination", "code"], registry=REGISTRY)
COLLECT_REFUSED = Counter("pixelrelay_collect_refused",
                          "Browser tag hits refused before any event was read, by reason "
                          "(unknown_key, origin_not_allowed)", ["reason"], registry=REGISTRY)
DELIVERY_LATENCY = Histogram(
    "pixelrelay_delivery_latency_seconds", "Accepted at ingest -> delivered to the destination",
    ["destination"], registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400))
REQUEST_LATENCY = Histogram(
    "pixelrelay_http_request_duration_seconds",
    "Time to answer an HTTP request; status = the HTTP status sent (none: the client left "
    "first); method `other` for a method outside HTTP's standard ones",
    ["method", "path", "status"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))

# Label values of REQUEST_LATENCY: fixed routes only, so a scan of random URLs cannot grow it.
_PATHS = frozenset({"/", "/login", "/logout", "/healthz", "/metrics", "/v1/events",
                    "/v1/diagnostics", "/v1/deliveries", "/v1/collect", "/tag.js",
                    "/open_api/v1.3/event/track/", "/openapi.json"})
_PREFIXES = (("/v1/webhooks/shopify/", "/v1/webhooks/shopify/{source}"),
             ("/v1/destinations/", "/v1/destinations/{name}/resume"),
             ("/destinations/", "/destinations/{name}/resume"),  # the dashboard's form
             ("/v1/events/", "/v1/events/{event_id}/trace"),
             ("/_emulator", "/_emulator"), ("/_meta", "/_meta"))
# The Meta-compatible drop-in (sources.graph_api.EVENTS_PATH_RE; not imported: metrics sits
# below the sources): one label for every version and pixel id.
_GRAPH_EVENTS = re.compile(r"/v[0-9]{1,3}\.[0-9]{1,3}/[^/]+/events")
GRAPH_EVENTS_LABEL = "/{version}/{pixel_id}/events"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE",
                      "CONNECT"})
# The platform codes pixelrelay knows: each destination type's, given by allow_labels.
_CODES: set[str] = set()
OTHER = "other"
# The `event` label's vocabulary: each destination type's standard names and those its default
# mapping sends, plus every configured event_map's names (allow_labels). A name a request
# invents (3,000 made-up names through the public site key once made 6,000 series, some
# holding an email) counts as `other`.
_EVENT_LABELS: set[str] = set()


def allow_labels(names: Iterable[str], event_map: Mapping[str, str],
                 codes: Iterable[int]) -> None:
    """Give a destination's standard names, the names of its event_map (each key and value)
    and its platform's known codes labels of their own.

    Called when a destination is built, before any of its events is counted; the vocabulary
    only grows, with configured names, so it stays bounded.
    """
    _EVENT_LABELS.update(names)
    _EVENT_LABELS.update(name for pair in event_map.items() for name in pair if name)
    _CODES.update(str(c) for c in codes)


def count_response(destination: str, label: str) -> None:
    """One answer of a destination (code_label), under the metric and its old alias."""
    child(DESTINATION_RESPONSES, destination, label).inc()
    child(_OLD_RESPONSES, destination, label).inc()


def event_label(name: str) -> str:
    """`name` if it is in the vocabulary, else `other`."""
    return name if name in _EVENT_LABELS else OTHER


def method_label(method: str) -> str:
    return method if method in _METHODS else OTHER


@lru_cache(maxsize=4096)
def child(metric: Counter | Histogram, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: labels() validates, takes a lock and builds its
    key on every call, which cost ingest a twentieth of a single-event request. The label
    sets are as bounded as the metric's own children (which stay, so an evicted entry only
    costs one labels() call again)."""
    return metric.labels(*labels)


# (counter, *label values) -> how many: a request's counts, summed before any child is
# resolved (a batch holds up to 1,000 events, and a child per event cost a third of delivery).
Tally = dict[tuple[Any, ...], int]


def count_all(counts: Tally) -> None:
    """Add each summed count to its labelled child; the `event` label of an event counter is
    bounded here (event_label), the one place every event count passes."""
    for (counter, *labels), n in counts.items():
        at = _EVENT_AT.get(counter)
        if at is not None:
            labels[at] = event_label(labels[at])
        child(counter, *labels).inc(n)


def path_label(path: str) -> str:
    if path in _PATHS:
        return path
    for prefix, label in _PREFIXES:
        if path.startswith(prefix):
            return label
    if path.endswith("/events") and _GRAPH_EVENTS.fullmatch(path):
        return GRAPH_EVENTS_LABEL
    return "other"


def code_label(code: int | None, status: int | None) -> str:
    """A known platform code, else `other`; http_<status> for a standard status, else
    http_other: what an answer says must not become a series of its own."""
    if code is not None:
        label = str(code)
        return label if label in _CODES else OTHER
    if status is None:
        return "network"
    return f"http_{status}" if 100 <= status <= 599 else "http_other"


def record_results(destination: str, items: Sequence[Claimed], results: Sequence[Finished],
                   now: float) -> None:
    """Count one request's per-event outcomes (the worker calls this after finish).

    Counts are summed per label set first (Tally).
    """
    counts: Tally = {}
    latency = child(DELIVERY_LATENCY, destination)
    for c, r in zip(items, results, strict=True):
        key: tuple[Any, ...]
        if r.state is DeliveryState.DELIVERED:
            key = (DELIVERED, destination, c.dest_event)
            latency.observe(max(0.0, now - c.created_at))
        elif r.state is DeliveryState.PENDING:
            key = (RETRIED, destination, c.dest_event)
        elif r.dead_reason == "rejected":
            key = (REJECTED, destination, c.dest_event, "destination")
        else:
            key = (GAVE_UP, destination, c.dest_event, r.dead_reason or "unknown")
        counts[key] = counts.get(key, 0) + 1
    count_all(counts)


class QueueCollector:
    """Gauges read from the database at scrape time, so every process reports the same queue."""

    def __init__(self, rows: Sequence[QueueRow], now: float) -> None:
        self.rows = rows
        self.now = now

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("pixelrelay_queue_depth", "Deliveries waiting, by state",
                                  labels=["destination", "state"])
        age = GaugeMetricFamily("pixelrelay_oldest_pending_age_seconds",
                                "Age of the oldest pending delivery (0 when none)",
                                labels=["destination"])
        paused = GaugeMetricFamily("pixelrelay_destination_paused",
                                   "1 while a token/permission error pauses the destination",
                                   labels=["destination"])
        for r in self.rows:
            depth.add_metric([r.destination, "pending"], r.pending)
            depth.add_metric([r.destination, "in_flight"], r.in_flight)
            oldest = 0.0 if r.oldest_pending_at is None else max(0.0, self.now
                                                                  - r.oldest_pending_at)
            age.add_metric([r.destination], oldest)
            paused.add_metric([r.destination], 1.0 if r.paused else 0.0)
        yield from (depth, age, paused)


class _Scrape:
    """The static registry plus this scrape's database gauges."""

    def __init__(self, queues: QueueCollector) -> None:
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.queues.collect()


# A comment line, which Prometheus ignores: says why the gauges are missing from this scrape.
GAUGES_OMITTED = (b"# pixelrelay_queue_depth, pixelrelay_oldest_pending_age_seconds and "
                  b"pixelrelay_destination_paused omitted: the database could not be read\n")


def exposition(rows: Sequence[QueueRow] | None, now: float) -> bytes:
    """Prometheus text format of every metric; `rows` None: the database could not be read,
    so this process's own metrics only, and a comment saying so."""
    if rows is None:
        return generate_latest(REGISTRY) + GAUGES_OMITTED
    return generate_latest(_Scrape(QueueCollector(rows, now)))
