"""Migrations: numbered files per dialect, each run once, even by two processes at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from pixelrelay.store.migrate import latest, migrations
from pixelrelay.store.sqlite import migrate


def test_every_dialect_numbers_its_migrations_without_gaps() -> None:
    for dialect in ("sqlite",):
        assert [m.version for m in migrations(dialect)] == list(range(1, latest(dialect) + 1))


def test_two_processes_migrating_a_new_file_at_once_run_each_migration_once(
        tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            results.append(migrate(conn))
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [latest("sqlite")] * 4
    with sqlite3.connect(db) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, latest("sqlite") + 1))  # none ran twice
