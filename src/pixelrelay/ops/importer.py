"""`pixelrelay import FILE`: JSONL or CSV events through the API's own ingest, line by line."""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pixelrelay.clock import Clock, SystemClock
from pixelrelay.config import Settings
from pixelrelay.destinations import build_destination
from pixelrelay.errors import Problem
from pixelrelay.ingest import Ingestor, IngestResult
from pixelrelay.model import Channel, Source
from pixelrelay.ops import OpsError
from pixelrelay.ops.attach import attach
from pixelrelay.ops.csv_rows import check_header, normalise_header, row_to_event
from pixelrelay.pipeline import nesting

CHUNK = 500  # the API's own limit per request
SHOWN = 100  # rejected lines printed; --rejects FILE gets them all
_WARNING = re.compile(r"events\[(\d+)\] (.*)", re.DOTALL)

Line = tuple[int, object | list[Problem]]  # (line number, event object or why it is unusable)


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    field: str
    reason: str


@dataclass(slots=True)
class ImportReport:
    lines: int = 0  # events read (blank lines aside)
    accepted: int = 0
    duplicates: int = 0
    rejected_lines: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    warnings: list[LineProblem] = field(default_factory=list)


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise OpsError(str(path), "cannot tell the format from the name: use .jsonl or .csv, "
                              "or pass --format")


def jsonl_lines(text: Iterator[str]) -> Iterator[Line]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            yield number, nesting.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, [Problem("line", f"not valid JSON: {exc}")]
        except nesting.TooDeep as exc:
            yield number, [Problem(exc.field, nesting.REASON)]


def csv_lines(text: Iterator[str]) -> Iterator[Line]:
    """Rows with the line they start on; a bad header stops the import before any row."""
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        raise OpsError("line 1", "the CSV file is empty; it needs a header row")
    columns = normalise_header(header)
    problems = check_header(columns)
    if problems:
        raise OpsError("line 1", "; ".join(f"{p.field}: {p.reason}" for p in problems))
    start = reader.line_num + 1
    for cells in reader:
        number, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            yield number, [Problem("line", f"has {len(cells)} cells; the header has "
                                           f"{len(columns)} columns")]
            continue
        yield number, row_to_event(dict(zip(columns, cells, strict=True)))


def with_default_source(lines: Iterator[Line], source: str | None) -> Iterator[Line]:
    for number, item in lines:
        if source and isinstance(item, dict) and "source" not in item:
            item = {**item, "source": source}
        yield number, item


def merge(report: ImportReport, numbers: list[int], result: IngestResult) -> None:
    """Fold one chunk's API result into the report, turning event indexes into line numbers."""
    report.accepted += result.accepted
    report.duplicates += result.duplicates
    report.rejected_lines += len(result.rejected)
    for rej in result.rejected:
        line = numbers[rej.index]
        report.problems += [LineProblem(line, p.field or "line", p.message())
                            for p in rej.problems]
    for w in result.warnings:
        m = _WARNING.fullmatch(w)
        if m and int(m.group(1)) < len(numbers):
            fld, _, reason = m.group(2).partition(": ")
            report.warnings.append(LineProblem(numbers[int(m.group(1))], fld, reason))


async def run_import(ingestor: Ingestor, lines: Iterator[Line],
                     advance: Callable[[int], None] = lambda n: None) -> ImportReport:
    report = ImportReport()
    chunk: list[object] = []
    numbers: list[int] = []
    last = 0

    async def flush() -> None:
        if chunk:
            merge(report, numbers, await ingestor.accept(chunk, channel=Channel.SERVER))
            chunk.clear()
            numbers.clear()

    for number, item in lines:
        report.lines += 1
        if isinstance(item, list):
            report.rejected_lines += 1
            report.problems += [LineProblem(number, p.field, p.reason) for p in item]
        else:
            chunk.append(item)
            numbers.append(number)
            if len(chunk) >= CHUNK:
                await flush()
        advance(number - last)
        last = number
    await flush()
    report.problems.sort(key=lambda p: p.line)
    report.warnings.sort(key=lambda p: p.line)
    return report


@dataclass(frozen=True, slots=True)
class ImportOptions:
    path: Path
    format: str | None = None
    source: str | None = None  # for rows that name none; else the API's default (web)
    rejects: Path | None = None


def main(settings: Settings, opts: ImportOptions, console: Console | None = None,
         clock: Clock | None = None) -> int:
    """0: every line accepted (or a duplicate); 1: some lines rejected; errors raise OpsError."""
    return asyncio.run(_main(settings, opts, console or Console(), clock or SystemClock()))


async def _main(settings: Settings, opts: ImportOptions, console: Console, clock: Clock) -> int:
    fmt = detect_format(opts.path, opts.format)
    if opts.source is not None and opts.source not in {s.value for s in Source}:
        raise OpsError("--source", "must be one of web, app, offline, crm")
    try:
        with opts.path.open(encoding="utf-8-sig") as f:
            total = sum(1 for _ in f)
    except OSError as exc:
        raise OpsError(str(opts.path), exc.strerror or "cannot be read") from None
    except UnicodeDecodeError as exc:  # checked here, before anything is committed
        raise OpsError(str(opts.path), f"is not UTF-8 text (byte {exc.start})") from None
    store = await attach(settings)
    try:
        ingestor = Ingestor(settings, store, [build_destination(d)
                                              for d in settings.destinations], clock,
                            use_sessions=False)
        # newline="" lets the csv module see line breaks inside quoted cells.
        with opts.path.open(encoding="utf-8-sig", newline="") as f, \
                Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"importing {opts.path.name}", total=total)
            lines = jsonl_lines(f) if fmt == "jsonl" else csv_lines(f)
            report = await run_import(ingestor, with_default_source(lines, opts.source),
                                      lambda n: progress.advance(task, n))
    finally:
        await store.close()
    if opts.rejects is not None:
        write_rejects(opts.rejects, report.problems)
    render(console, opts, report)
    return 1 if report.rejected_lines else 0


def write_rejects(path: Path, problems: list[LineProblem]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line", "field", "reason"])
        w.writerows([p.line, p.field, p.reason] for p in problems)


def render(console: Console, opts: ImportOptions, r: ImportReport) -> None:
    table = Table(title=f"import {opts.path.name}")
    for col in ("events read", "accepted", "duplicates", "rejected"):
        table.add_column(col, justify="right")
    table.add_row(str(r.lines), str(r.accepted), str(r.duplicates), str(r.rejected_lines))
    console.print(table)
    console.print(f"{r.lines} events read: {r.accepted} accepted, {r.duplicates} duplicates, "
                  f"{r.rejected_lines} rejected")
    if r.problems:
        rej = Table(title="rejected lines")
        for col in ("line", "field", "reason"):
            rej.add_column(col)
        for p in r.problems[:SHOWN]:
            rej.add_row(str(p.line), p.field, p.reason)
        console.print(rej)
        more = len(r.problems) - SHOWN
        if more > 0:
            console.print(f"... and {more} more problem(s)"
                          + ("" if opts.rejects else "; pass --rejects FILE for all of them"))
    if opts.rejects is not None:
        console.print(f"rejected lines written to {opts.rejects}")
    for p in r.warnings[:SHOWN]:
        console.print(f"warning: line {p.line}: {p.field}: {p.reason}")
