"""The diagnostics read model: every SQL statement diagnostics runs, over the store's hooks."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

T = TypeVar("T")
LATENCY_SAMPLE = 100_000  # p50/p95 over the newest deliveries of the window, to bound memory
PRUNE_AFTER_S = 8 * 86400.0  # ingest rejection/duplicate rows outlive the longest window (7 d)


class SqlHooks(Protocol):
    """The feature-store hooks of SQLiteStore (`read` / `write` run a function on a connection)."""

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...


# -- writes (ingest) ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IngestNote:
    """What ingest refused or absorbed, kept because the outbox stores neither."""

    kind: str  # "rejected" | "duplicate" | a NoticeKind (a kept event's dropped field...)
    event: str
    field: str = ""  # rejected: the first problem's field; notice: the field it names
    reason: str = ""  # rejected: its reason, digits masked (timestamps vary; values never stored)
    problems: int = 1
    event_id: str = ""  # duplicate; rejected: as given or as the order id derives it
    order_id: str = ""  # rejected: properties.order_id
    sample: tuple[dict[str, str], ...] = ()  # rejected: every problem, field and reason
    merged: bool = False  # duplicate: folded into its pending first copy


_EMAIL_LIKE = re.compile(r"[^\s@]+@[^\s@]+")
_LONG_NUMBER = re.compile(r"\+?\d[\d ()./-]{6,}\d")


def mask_reason(reason: str) -> str:
    """A reason as stored: our own text, unchanged (what varies per event is in the
    Problem's detail, which is never stored); anything shaped like an email address or a
    phone number is masked, should a value ever reach a reason."""
    return _LONG_NUMBER.sub("<number>", _EMAIL_LIKE.sub("<email>", reason))[:200]


_NUMBERS = re.compile(r"\d+")


def mask_field(field: str) -> str:
    """user.email.3 -> user.email.N; from a key holding an "@" on -> <key>: a sender that
    used values as keys must not get an email address stored through a key name."""
    at = field.find("@")
    if at >= 0:
        field = field[:field.rfind(".", 0, at) + 1] + "<key>"
    return _NUMBERS.sub("N", field)[:128]


def record_notes(conn: sqlite3.Connection, at: float, channel: str,
                 notes: Sequence[IngestNote]) -> None:
    rejected = [(at, channel, n.event[:128], n.field[:128], n.reason, n.problems,
                 n.event_id[:256] or None, n.order_id[:128] or None,
                 orjson.dumps(n.sample).decode()) for n in notes if n.kind == "rejected"]
    dupes = [(at, channel, n.event[:128], n.event_id[:256], int(n.merged)) for n in notes
             if n.kind == "duplicate"]
    kept = [(at, channel, n.event[:128], mask_field(n.field), n.kind) for n in notes
            if n.kind not in ("rejected", "duplicate")]
    if kept:
        conn.executemany("INSERT INTO ingest_notices (at, channel, event, field, kind) "
                         "VALUES (?, ?, ?, ?, ?)", kept)
        conn.execute("DELETE FROM ingest_notices WHERE at < ?", (at - PRUNE_AFTER_S,))
    if rejected:
        conn.executemany("INSERT INTO ingest_rejections (at, channel, event, field, reason, "
                         "problems, event_id, order_id, sample) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rejected)
    if dupes:
        conn.executemany("INSERT INTO ingest_duplicates (at, channel, event, event_id, merged) "
                         "VALUES (?, ?, ?, ?, ?)", dupes)
    # Range deletes on the `at` indexes: the tables stay bounded without a separate job.
    cutoff = at - PRUNE_AFTER_S
    conn.execute("DELETE FROM ingest_rejections WHERE at < ?", (cutoff,))
    conn.execute("DELETE FROM ingest_duplicates WHERE at < ?", (cutoff,))


def record_refusal(conn: sqlite3.Connection, at: float, reason: str, origin: str | None) -> None:
    conn.execute("INSERT INTO collect_refusals (at, reason, origin) VALUES (?, ?, ?)",
                 (at, reason, origin))
    conn.execute("DELETE FROM collect_refusals WHERE at < ?", (at - PRUNE_AFTER_S,))


# -- the window read model ---------------------------------------------------------------------

@dataclass(slots=True)
class WindowRows:
    """Raw rows for one window; report.py turns them into numbers."""

    accepted: list[tuple[str, int]] = field(default_factory=list)  # name, n
    duplicates: list[tuple[str, int, int]] = field(default_factory=list)  # name, n, merged
    ingest_rejections: list[tuple[str, str, str, int]] = field(default_factory=list)
    # destination, name, dest_event, state, dead_reason, n
    deliveries: list[tuple[str, str, str, str, str | None, int]] = field(default_factory=list)
    # destination, name, dead_reason, code, message, n
    dead: list[tuple[str, str, str | None, int | None, str | None, int]] = field(
        default_factory=list)
    # name, dest_event, n, then one count per report.KEYS entry
    coverage: list[tuple[Any, ...]] = field(default_factory=list)
    notices: list[tuple[str, str, str, int]] = field(default_factory=list)  # event, field, kind, n
    # reason, origin, n: tag hits refused before any event was read
    collect_refusals: list[tuple[str, str | None, int]] = field(default_factory=list)
    dedup: list[tuple[str, int, int]] = field(default_factory=list)  # name, server, also browser
    enrichment: list[tuple[str, int, int]] = field(default_factory=list)  # name, server, enriched
    latencies: list[tuple[str, float]] = field(default_factory=list)  # destination, seconds
    trend_received: list[tuple[int, int]] = field(default_factory=list)  # bucket, n
    trend_delivered: list[tuple[int, int]] = field(default_factory=list)


_CHANNEL = "coalesce(json_extract(CAST(e.body AS TEXT), '$.channel'), 'server')"
_HAS = "coalesce(json_extract(CAST(e.body AS TEXT), '$.user.{0}'), '') != ''"
_LIST = "coalesce(json_array_length(CAST(e.body AS TEXT), '$.user.{0}'), 0) > 0"

SQL_ACCEPTED = "SELECT name, count(*) FROM events WHERE received_at >= ? GROUP BY name"
SQL_DUPLICATES = """
SELECT event, count(*), sum(merged) FROM ingest_duplicates WHERE at >= ? GROUP BY event"""
SQL_COLLECT_REFUSALS = """
SELECT reason, origin, count(*) FROM collect_refusals WHERE at >= ? GROUP BY reason, origin"""
SQL_NOTICES = """
SELECT event, field, kind, count(*) FROM ingest_notices WHERE at >= ?
 GROUP BY event, field, kind"""
SQL_INGEST_REJECTIONS = """
SELECT event, field, reason, count(*) FROM ingest_rejections WHERE at >= ?
 GROUP BY event, field, reason"""
SQL_DELIVERIES = """
SELECT d.destination, e.name, d.dest_event, d.state, d.dead_reason, count(*)
  FROM deliveries AS d JOIN events AS e ON e.id = d.event_ref
 WHERE d.created_at >= ?
 GROUP BY d.destination, e.name, d.dest_event, d.state, d.dead_reason"""
SQL_DEAD = """
SELECT d.destination, e.name, d.dead_reason, d.last_code, d.last_message, count(*)
  FROM deliveries AS d JOIN events AS e ON e.id = d.event_ref
 WHERE d.created_at >= ? AND d.state = 'dead'
 GROUP BY d.destination, e.name, d.dead_reason, d.last_code, d.last_message"""
# Coverage of what is (or will be) sent: events with a delivered or pending delivery.
SQL_COVERAGE = f"""
SELECT e.name, min(r.dest_event), count(*),
       sum({_LIST.format("email")}), sum({_LIST.format("phone")}),
       sum({_LIST.format("external_id")}), sum({_HAS.format("ttclid")}),
       sum({_HAS.format("ttp")}), sum({_HAS.format("ip")} AND {_HAS.format("user_agent")}),
       {", ".join(f"sum({_HAS.format(k)})" for k in (
           "first_name", "last_name", "zip_code", "city", "state", "country"))}
  FROM (SELECT event_ref, min(dest_event) AS dest_event FROM deliveries
         WHERE created_at >= ? AND state IN ('delivered', 'pending', 'in_flight')
         GROUP BY event_ref) AS r
  JOIN events AS e ON e.id = r.event_ref
 GROUP BY e.name"""
# Server-side arrivals (stored or absorbed as duplicates) whose event_id the browser also sent;
# browser copies are looked up 48 h before the window too, as they usually come first.
SQL_DEDUP = f"""
WITH arrivals AS (
    SELECT e.name AS name, e.event_id AS event_id, {_CHANNEL} AS ch, e.received_at AS at
      FROM events AS e WHERE e.received_at >= :lookback
    UNION ALL
    SELECT event, event_id, channel, at FROM ingest_duplicates WHERE at >= :lookback)
SELECT name, count(*),
       sum(event_id IN (SELECT event_id FROM arrivals WHERE ch = 'browser'))
  FROM arrivals WHERE ch != 'browser' AND at >= :since
 GROUP BY name"""
SQL_ENRICHMENT = f"""
SELECT e.name, count(*),
       sum(json_extract(CAST(e.body AS TEXT), '$.enriched_from') IS NOT NULL)
  FROM events AS e WHERE e.received_at >= ? AND {_CHANNEL} != 'browser'
 GROUP BY e.name"""
SQL_LATENCIES = f"""
SELECT destination, delivered_at - created_at FROM deliveries
 WHERE created_at >= ? AND state = 'delivered' AND delivered_at IS NOT NULL
 ORDER BY created_at DESC LIMIT {LATENCY_SAMPLE}"""
SQL_TREND_RECEIVED = """
SELECT CAST((received_at - :since) / :bucket AS INTEGER) AS b, count(*) FROM events
 WHERE received_at >= :since GROUP BY b"""
SQL_TREND_DELIVERED = """
SELECT CAST((delivered_at - :since) / :bucket AS INTEGER) AS b, count(*) FROM deliveries
 WHERE created_at >= :since AND state = 'delivered' AND delivered_at >= :since GROUP BY b"""


def read_window(conn: sqlite3.Connection, since: float, bucket_s: float) -> WindowRows:
    one = (since,)
    trend = {"since": since, "bucket": bucket_s}
    return WindowRows(
        accepted=conn.execute(SQL_ACCEPTED, one).fetchall(),
        duplicates=conn.execute(SQL_DUPLICATES, one).fetchall(),
        ingest_rejections=conn.execute(SQL_INGEST_REJECTIONS, one).fetchall(),
        deliveries=conn.execute(SQL_DELIVERIES, one).fetchall(),
        dead=conn.execute(SQL_DEAD, one).fetchall(),
        coverage=conn.execute(SQL_COVERAGE, one).fetchall(),
        notices=conn.execute(SQL_NOTICES, one).fetchall(),
        collect_refusals=conn.execute(SQL_COLLECT_REFUSALS, one).fetchall(),
        dedup=conn.execute(SQL_DEDUP, {"since": since,
                                       "lookback": since - 48 * 3600.0}).fetchall(),
        enrichment=conn.execute(SQL_ENRICHMENT, one).fetchall(),
        latencies=conn.execute(SQL_LATENCIES, one).fetchall(),
        trend_received=conn.execute(SQL_TREND_RECEIVED, trend).fetchall(),
        trend_delivered=conn.execute(SQL_TREND_DELIVERED, trend).fetchall(),
    )


# -- destinations and queues (also the Prometheus gauges) --------------------------------------

@dataclass(frozen=True, slots=True)
class QueueRow:
    destination: str
    pending: int
    in_flight: int
    oldest_pending_at: float | None
    paused: bool
    paused_reason: str | None
    paused_at: float | None


SQL_QUEUE = """
SELECT (SELECT count(*) FROM deliveries WHERE destination = :d AND state = 'pending'),
       (SELECT count(*) FROM deliveries WHERE destination = :d AND state = 'in_flight'),
       (SELECT created_at FROM deliveries WHERE destination = :d AND state = 'pending'
         ORDER BY created_at LIMIT 1),
       (SELECT paused FROM destinations WHERE name = :d),
       (SELECT reason FROM destinations WHERE name = :d),
       (SELECT updated_at FROM destinations WHERE name = :d)"""


def read_queues(conn: sqlite3.Connection, names: Sequence[str]) -> list[QueueRow]:
    rows = []
    for name in names:
        pending, in_flight, oldest, paused, reason, at = conn.execute(
            SQL_QUEUE, {"d": name}).fetchone()
        rows.append(QueueRow(name, pending, in_flight, oldest, bool(paused),
                             reason if paused else None, at if paused else None))
    return rows


# -- recent events and traces ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RecentRow:
    event_id: str
    name: str
    received_at: float
    channel: str
    states: str  # "destination:state, ..."


_RECENT_COLUMNS = f"""
SELECT e.event_id, e.name, e.received_at, {_CHANNEL},
       (SELECT group_concat(d.destination || ':' || d.state, ', ')
          FROM idempotency AS i JOIN deliveries AS d ON d.id = i.delivery_id
         WHERE i.event_id = e.event_id AND d.event_ref = e.id)
  FROM events AS e"""
# An event_id prefix is found through the idempotency key (indexed on event_id first).
SQL_RECENT_BY_ID = f"""{_RECENT_COLUMNS}
 WHERE e.id IN (SELECT d.event_ref FROM idempotency AS i JOIN deliveries AS d
                    ON d.id = i.delivery_id
                 WHERE i.event_id >= :q AND i.event_id < :hi LIMIT 500)
 ORDER BY e.id DESC LIMIT :limit"""
SQL_RECENT = f"""{_RECENT_COLUMNS}
 WHERE (:name = '' OR e.name = :name) ORDER BY e.id DESC LIMIT :limit"""


def read_recent(conn: sqlite3.Connection, q: str, limit: int = 50) -> list[RecentRow]:
    rows = []
    # An event_id prefix, else an order id (its purchase is ord_<order id>_...).
    for prefix in ((q, f"ord_{q}_") if q else ()):
        rows = conn.execute(SQL_RECENT_BY_ID, {"q": prefix, "hi": prefix + "\U0010ffff",
                                               "limit": limit}).fetchall()
        if rows:
            break
    if not rows:
        rows = conn.execute(SQL_RECENT, {"name": q, "limit": limit}).fetchall()
    return [RecentRow(r[0], r[1], r[2], r[3], r[4] or "") for r in rows]


@dataclass(frozen=True, slots=True)
class AttemptRow:
    at: float
    http_status: int | None
    code: int | None
    message: str | None
    request_id: str | None
    latency_ms: float
    outcome: str
    batch_size: int


@dataclass(frozen=True, slots=True)
class TraceRow:
    destination: str
    dest_event: str
    state: str
    attempts: int
    last_code: int | None
    last_message: str | None
    last_request_id: str | None
    dead_reason: str | None
    reason: str | None
    created_at: float
    delivered_at: float | None
    payload: bytes | None  # the destination's item as sent (hashed)
    body: bytes  # the stored event (hashed)
    log: list[AttemptRow]


SQL_TRACE = """
SELECT d.destination, d.dest_event, d.state, d.attempts, d.last_code, d.last_message,
       d.last_request_id, d.dead_reason, d.reason, d.created_at, d.delivered_at, d.payload,
       e.body, d.updated_at
  FROM idempotency AS i
  JOIN deliveries AS d ON d.id = i.delivery_id
  JOIN events AS e ON e.id = d.event_ref
 WHERE i.event_id = ?
 ORDER BY d.destination, d.dest_event"""
# Requests that carried the event: attempts of its destination between acceptance and last update.
SQL_ATTEMPTS = """
SELECT a.at, a.http_status, a.code, a.message, a.request_id, a.latency_ms, a.outcome,
       json_array_length(a.event_ids)
  FROM attempts AS a
 WHERE a.destination = ? AND a.at >= ? AND a.at <= ?
   AND EXISTS (SELECT 1 FROM json_each(a.event_ids) WHERE value = ?)
 ORDER BY a.at, a.id"""


def read_trace(conn: sqlite3.Connection, event_id: str) -> list[TraceRow]:
    out = []
    for r in conn.execute(SQL_TRACE, (event_id,)).fetchall():
        log = [AttemptRow(*a) for a in conn.execute(
            SQL_ATTEMPTS, (r[0], r[9] - 1.0, r[13] + 1.0, event_id)).fetchall()]
        out.append(TraceRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                            r[11], r[12], log))
    return out


# -- refusals at ingest, found again ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RejectionRow:
    at: float
    channel: str
    event: str
    event_id: str | None
    order_id: str | None
    problems: list[dict[str, str]]  # field and reason of each, never a value


SQL_REJECTIONS = """
SELECT at, channel, event, event_id, order_id, coalesce(sample, '[]') FROM ingest_rejections
 WHERE (:event_id IS NOT NULL AND event_id = :event_id)
    OR (:order_id IS NOT NULL AND order_id = :order_id)
 ORDER BY at DESC LIMIT 20"""


def read_rejections(conn: sqlite3.Connection, event_id: str | None,
                    order_id: str | None) -> list[RejectionRow]:
    rows = conn.execute(SQL_REJECTIONS, {"event_id": event_id or None,
                                         "order_id": order_id or None}).fetchall()
    return [RejectionRow(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5])) for r in rows]


SQL_LATER_COPIES = """
SELECT at, channel, merged FROM ingest_duplicates WHERE event_id = ? ORDER BY at LIMIT 50"""


def read_later_copies(conn: sqlite3.Connection, event_id: str) -> list[tuple[float, str, bool]]:
    """Every later copy of an event_id: when, by which channel, merged or a plain duplicate."""
    return [(r[0], r[1], bool(r[2])) for r in conn.execute(SQL_LATER_COPIES, (event_id,))]
