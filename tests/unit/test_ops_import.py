"""Import: the CSV header mapping, line numbers of JSONL/CSV rows, and results by line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pixelrelay.errors import Problem
from pixelrelay.ingest import IngestResult, Rejection
from pixelrelay.ops import OpsError
from pixelrelay.ops.csv_rows import check_header, normalise_header, row_to_event
from pixelrelay.ops.importer import (
    ImportReport,
    LineProblem,
    csv_lines,
    detect_format,
    jsonl_lines,
    merge,
    with_default_source,
)


def test_header_names_unknown_and_duplicate_columns_with_a_hint() -> None:
    problems = check_header(normalise_header(["Event", " emial", "value", "VALUE"]))
    assert problems == [
        Problem("header column 2 ('emial')", "unknown column; did you mean 'email'?"),
        Problem("header column 4 ('value')", "appears twice")]
    assert check_header(["email"]) == [Problem("header", "needs an 'event' column")]
    assert check_header(["event", "properties.Coupon"]) == []
    assert check_header(["event", "properties."])[0].reason.startswith("unknown column")


def test_a_row_becomes_the_api_event_object() -> None:
    row = {"event": "Purchase", "event_id": "", "email": "a@x.com | b@y.com", "phone": "+4917",
           "value": "9.50", "currency": "eur", "order_id": "1001", "content_ids": "SKU-1",
           "num_items": "2", "url": "https://s/x", "consent_marketing": "granted",
           "properties.Coupon": "X1", "source": "offline"}
    assert row_to_event(row) == {
        "event": "Purchase", "source": "offline",
        "user": {"email": ["a@x.com", "b@y.com"], "phone": "+4917"},
        "properties": {"value": "9.50", "currency": "eur", "order_id": "1001",
                       "content_ids": ["SKU-1"], "num_items": 2, "Coupon": "X1"},
        "page": {"url": "https://s/x"}, "consent": {"marketing": "granted"}}


def test_jsonl_lines_keep_their_numbers_and_report_bad_json() -> None:
    lines = list(jsonl_lines(iter(['{"event":"A"}\n', "\n", "{oops\n", '"x"\n'])))
    assert lines[0] == (1, {"event": "A"})
    assert lines[1][0] == 3 and isinstance(lines[1][1], list)
    assert lines[1][1][0].field == "line" and "not valid JSON" in lines[1][1][0].reason
    assert lines[2] == (4, "x")  # not an object: the API's parser says so, by line


def test_csv_lines_number_rows_by_where_they_start() -> None:
    text = 'event,value,description\nA,1,"two\nlines"\n\nB,2\nC,3,x\n'
    lines = list(csv_lines(io.StringIO(text, newline="")))
    assert [n for n, _ in lines] == [2, 5, 6]
    assert lines[0][1] == {"event": "A", "properties": {"value": "1", "description":
                                                        "two\nlines"}}
    assert lines[1][1] == [Problem("line", "has 2 cells; the header has 3 columns")]


def test_a_bad_header_stops_before_any_row() -> None:
    with pytest.raises(OpsError, match=r"line 1: header column 2 \('emial'\)"):
        list(csv_lines(io.StringIO("event,emial\nA,x\n")))
    with pytest.raises(OpsError, match="empty"):
        list(csv_lines(io.StringIO("")))


def test_default_source_fills_only_rows_without_one() -> None:
    lines = [(1, {"event": "A"}), (2, {"event": "B", "source": "web"}), (3, [])]
    out = list(with_default_source(iter(lines), "offline"))  # type: ignore[arg-type]
    assert [x for _, x in out] == [{"event": "A", "source": "offline"},
                                   {"event": "B", "source": "web"}, []]


def test_merge_turns_event_indexes_into_line_numbers() -> None:
    report = ImportReport()
    result = IngestResult(accepted=1, duplicates=1, rejected=[
        Rejection(1, (Problem("user.email", "bad"), Problem("", "not an object")))],
        warnings=["events[2] user.phone: not a valid phone number; dropped"])
    merge(report, [3, 7, 9], result)
    assert (report.accepted, report.duplicates, report.rejected_lines) == (1, 1, 1)
    assert report.problems == [LineProblem(7, "user.email", "bad"),
                               LineProblem(7, "line", "not an object")]
    assert report.warnings == [LineProblem(9, "user.phone",
                                           "not a valid phone number; dropped")]


def test_format_from_the_name_or_the_flag() -> None:
    assert detect_format(Path("a.JSONL"), None) == "jsonl"
    assert detect_format(Path("a.csv"), None) == "csv"
    assert detect_format(Path("a.txt"), "csv") == "csv"
    with pytest.raises(OpsError, match="--format"):
        detect_format(Path("a.txt"), None)
