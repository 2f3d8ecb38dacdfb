"""`pixelrelay report gap`: shop orders against the purchases TikTok got, and why not."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pixelrelay.clock import Clock, SystemClock
from pixelrelay.config import Settings
from pixelrelay.destinations import DestinationSettings, names_of, plugin_for
from pixelrelay.destinations import purchase_names as every_purchase_name
from pixelrelay.errors import Problem
from pixelrelay.event_ids import order_of
from pixelrelay.model import DeliveryState
from pixelrelay.names import snake_case
from pixelrelay.ops import OpsError
from pixelrelay.ops.attach import attach
from pixelrelay.ops.window import Window, iso, make_window, parse_time
from pixelrelay.store.rows import PurchaseRecord, RejectedOrder

SHOWN = 50
CSV_COLUMNS = ("order_id", "created_at", "order_value", "status", "category", "reason",
               "event_id", "event_value")
# Which delivery speaks for an order when it has several (a re-sent copy, a replay).
_RANK = {DeliveryState.DELIVERED: 0, DeliveryState.IN_FLIGHT: 1, DeliveryState.PENDING: 2,
         DeliveryState.DEAD: 3, DeliveryState.SUPPRESSED: 4, DeliveryState.FILTERED: 5}


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    line: int
    created_at: float | None = None
    value: float | None = None


@dataclass(frozen=True, slots=True)
class GapRow:
    order_id: str
    created_at: float | None
    order_value: float | None
    status: str  # matched | missing | extra
    # delivered | never_received | rejected_ingest | suppressed | filtered | rejected | dead |
    # pending
    category: str
    reason: str
    event_id: str = ""
    event_value: float | None = None


def read_orders(lines: Iterable[str], now: float) -> tuple[list[Order], list[Problem]]:
    """Orders by `order_id` (required), `created_at` and `value` (optional); other columns of
    a shop export are ignored. Problems name the line and column; those rows are skipped."""
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader, [])]
    if "order_id" not in header:
        raise OpsError("--orders line 1", "needs an order_id column (optional: created_at, "
                                          "value)")
    col = {name: header.index(name) for name in ("order_id", "created_at", "value")
           if name in header}
    orders: list[Order] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    start = reader.line_num + 1
    for cells in reader:
        number, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        cell = {k: cells[i].strip() if i < len(cells) else "" for k, i in col.items()}
        where = f"line {number}"
        if not cell["order_id"]:
            problems.append(Problem(f"{where} order_id", "is empty"))
            continue
        if cell["order_id"] in seen:
            problems.append(Problem(f"{where} order_id", f"{cell['order_id']} appears twice; "
                                                         "the first row counts"))
            continue
        created = _number_or_time(cell.get("created_at", ""), now)
        value = _float(cell.get("value", ""))
        if created is False:
            problems.append(Problem(f"{where} created_at", "is not ISO 8601 or Unix seconds"))
            continue
        if value is False:
            problems.append(Problem(f"{where} value", "is not a number"))
            continue
        seen.add(cell["order_id"])
        orders.append(Order(cell["order_id"], number, created, value))
    return orders, problems


def _number_or_time(text: str, now: float) -> float | bool | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_time(text, now, "created_at")
    except OpsError:
        return False


def _float(text: str) -> float | bool | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return False


def purchase_names(dest: DestinationSettings) -> list[str]:
    """Incoming and destination names that mean a purchase under this destination's names."""
    plugin = plugin_for(dest.type)
    if plugin is None:
        return []
    names = names_of(dest)
    found = set(plugin.purchase_events)
    found |= {n for n in plugin.default_incoming | set(dest.event_map)
              if names(n) in plugin.purchase_events}
    return sorted(found)


def order_id_of(rec: PurchaseRecord) -> str | None:
    """properties.order_id, else the id inside a derived event_id `ord_<order>_<snake name>`."""
    if rec.order_id:
        return rec.order_id
    return order_of(rec.event_id, tuple(snake_case(n) for n in (
        rec.dest_event, *sorted(every_purchase_name()), rec.name)))


def classify(records: Sequence[PurchaseRecord],
             refused: RejectedOrder | None = None) -> tuple[str, str, str]:
    """(category, reason, event_id) of an order from the deliveries of its purchase event,
    or from the latest refusal of one at ingest."""
    if not records:
        if refused is not None:
            return ("rejected_ingest", f"rejected at ingest: {refused.field}: {refused.reason}",
                    "")
        return "never_received", "never received: no purchase event with this order id", ""
    r = min(records, key=lambda x: _RANK.get(x.state, 9))
    last = " ".join(str(x) for x in (r.last_code, r.last_message) if x is not None)
    if r.state is DeliveryState.DELIVERED:
        return "delivered", "delivered", r.event_id
    if r.state is DeliveryState.IN_FLIGHT:
        return "pending", "pending: being sent now", r.event_id
    if r.state is DeliveryState.PENDING:
        if not r.attempts:
            return "pending", "pending: queued, not yet sent", r.event_id
        return "pending", (f"pending: retrying after {r.attempts} attempt(s)"
                           + (f"; last answer: {last}" if last else "")), r.event_id
    if r.state is DeliveryState.DEAD:
        if r.dead_reason == "rejected":
            return "rejected", f"rejected by TikTok: {last or 'no message'}", r.event_id
        return "dead", (f"dead: {r.dead_reason or 'undelivered'}"
                        + (f"; last answer: {last}" if last else "")), r.event_id
    kind = "suppressed" if r.state is DeliveryState.SUPPRESSED else "filtered"
    return kind, f"{kind}: {r.reason or 'no reason recorded'}", r.event_id


def reconcile(orders: Sequence[Order], records: Sequence[PurchaseRecord], window: Window,
              refused: Mapping[str, RejectedOrder] | None = None) -> list[GapRow]:
    by_order: dict[str, list[PurchaseRecord]] = {}
    for rec in records:
        oid = order_id_of(rec)
        if oid is not None:
            by_order.setdefault(oid, []).append(rec)
    rows: list[GapRow] = []
    for o in orders:
        # An order without created_at cannot be placed in time, so a window keeps it.
        if o.created_at is not None and not window.contains(o.created_at):
            continue
        recs = by_order.get(o.order_id, [])
        category, reason, event_id = classify(recs, (refused or {}).get(o.order_id))
        value = next((r.value for r in recs if r.event_id == event_id), None)
        if (category == "delivered" and o.value is not None and value is not None
                and abs(o.value - value) > 0.005):
            reason += f"; value differs (order {o.value:.2f}, event {value:.2f})"
        rows.append(GapRow(o.order_id, o.created_at, o.value,
                           "matched" if category == "delivered" else "missing", category,
                           reason, event_id, value))
    all_orders = {o.order_id for o in orders}
    for oid, recs in by_order.items():
        delivered = [r for r in recs if r.state is DeliveryState.DELIVERED]
        if oid in all_orders or not delivered or not window.contains(delivered[0].event_time):
            continue
        r = delivered[0]
        rows.append(GapRow(oid, None, None, "extra", "delivered",
                           "delivered purchase with no order in the orders file",
                           r.event_id, r.value))
    return rows


@dataclass(frozen=True, slots=True)
class GapOptions:
    orders: Path
    out: Path = Path("gap.csv")
    since: str | None = None
    until: str | None = None
    destination: str | None = None


def pick_destination(settings: Settings, name: str | None) -> str:
    names = [d.name for d in settings.destinations]
    if name is None:
        if len(names) == 1:
            return names[0]
        raise OpsError("--destination", f"several destinations are configured; name one of "
                                        f"{', '.join(names) or '(none)'}")
    if name not in names:
        raise OpsError("--destination", f"no destination named {name!r} "
                                        f"(configured: {', '.join(names) or 'none'})")
    return name


def main(settings: Settings, opts: GapOptions, console: Console | None = None,
         clock: Clock | None = None) -> int:
    """0 when every order in the window was delivered, 1 when some are missing."""
    return asyncio.run(_main(settings, opts, console or Console(), clock or SystemClock()))


async def _main(settings: Settings, opts: GapOptions, console: Console, clock: Clock) -> int:
    now = clock.now()
    window = make_window(opts.since, opts.until, now)
    dest = pick_destination(settings, opts.destination)
    try:
        with opts.orders.open(encoding="utf-8-sig", newline="") as f:
            orders, problems = read_orders(f, now)
    except OSError as exc:
        raise OpsError(str(opts.orders), exc.strerror or "cannot be read") from None
    names = purchase_names(settings.destination(dest))
    dest_names = names_of(settings.destination(dest))
    purchases = every_purchase_name()
    store = await attach(settings)
    try:
        records = await store.purchase_records(dest, names)
        refusals = await store.rejected_orders()
    finally:
        await store.close()
    # The latest refusal per order, of events that mean a purchase under this mapping.
    refused = {r.order_id: r for r in refusals
               if dest_names(r.event) in purchases}
    rows = reconcile(orders, records, window, refused)
    write_csv(opts.out, rows)
    render(console, dest, rows, problems, opts.out)
    return 1 if any(r.status == "missing" for r in rows) else 0


def write_csv(path: Path, rows: Sequence[GapRow]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([r.order_id, iso(r.created_at), _num(r.order_value), r.status,
                        r.category, r.reason, r.event_id, _num(r.event_value)])


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def render(console: Console, dest: str, rows: Sequence[GapRow], problems: Sequence[Problem],
           out: Path) -> None:
    for p in problems:
        console.print(f"orders file: {p.field}: {p.reason} (skipped)")
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[r.status, r.category] = counts.get((r.status, r.category), 0) + 1
    summary = Table(title=f"orders vs purchases delivered to {dest}")
    for col in ("status", "category", "orders"):
        summary.add_column(col, justify="right" if col == "orders" else "left")
    for (status, category), n in sorted(counts.items()):
        summary.add_row(status, category, str(n))
    console.print(summary)
    odd = [r for r in rows if r.status != "matched"]
    if odd:
        detail = Table(title="missing and extra")
        for col in ("order_id", "status", "reason", "event_id"):
            detail.add_column(col)
        for r in odd[:SHOWN]:
            detail.add_row(r.order_id, r.status, r.reason, r.event_id)
        console.print(detail)
        if len(odd) > SHOWN:
            console.print(f"... and {len(odd) - SHOWN} more in {out}")
    console.print(f"{len(rows)} row(s) written to {out}")
