"""Each destination's max_age_days: an event goes to every destination whose window holds it,
and is refused, naming the field and the destination, only when none does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pixelrelay.clock import FakeClock
from pixelrelay.destinations import build_destination
from pixelrelay.ingest import Ingestor
from pixelrelay.store import SQLiteStore
from tests.conftest import make_settings
from tests.support import sqlite_exec

NOW = 1_776_943_380.0
DAY = 86400


async def test_an_event_reaches_only_the_destinations_whose_window_holds_it(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "a.db", "http://127.0.0.1:9", max_age_days=2)
    wide = dataclasses.replace(settings.destinations[0], name="wide", max_age_days=10)
    settings = dataclasses.replace(settings, destinations=(*settings.destinations, wide))
    store = SQLiteStore(str(tmp_path / "a.db"))
    await store.open()
    try:
        ingest = Ingestor(settings, store, [build_destination(d) for d in settings.destinations],
                          FakeClock(NOW))
        result = await ingest.accept([
            {"event": "Purchase", "event_id": f"age{days}", "timestamp": NOW - days * DAY}
            for days in (1, 2, 5, 10, 12)])
        assert result.accepted == 4
        assert [r.index for r in result.rejected] == [4]
        (problem,) = result.rejected[0].problems
        assert problem.field == "timestamp"
        assert "2-day window" in problem.reason and "(destination tiktok)" in problem.reason
        rows = sqlite_exec(tmp_path / "a.db", "SELECT event_id, destination FROM deliveries"
                                              " ORDER BY event_id, destination")
        assert rows == [("age1", "tiktok"), ("age1", "wide"), ("age10", "wide"),
                        ("age2", "tiktok"), ("age2", "wide"), ("age5", "wide")]
    finally:
        await store.close()
