"""The test suite's own PostgreSQL hygiene: a run killed from outside leaves its schema behind
(nothing dropped it); the next run drops such leftovers, and never a schema still in use."""

from __future__ import annotations

import time

import psycopg

from tests import conftest


def test_schemas_of_killed_runs_are_dropped_and_live_ones_kept() -> None:
    with conftest.postgres_url():  # skips (or fails under CI) without a server
        pass
    now = int(time.time())
    old = f"test_{now - conftest.ABANDONED_AFTER_S - 60}_{'a' * 12}"
    recent = f"test_{now - 60}_{'b' * 12}"
    with psycopg.connect(conftest.POSTGRES, autocommit=True) as conn:
        for name in (old, recent):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
    try:
        conftest._swept = False
        with conftest.postgres_url(), psycopg.connect(conftest.POSTGRES) as conn:
            left = {r[0] for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                ([old, recent],))}
        assert left == {recent}
    finally:
        with psycopg.connect(conftest.POSTGRES, autocommit=True) as conn:
            for name in (old, recent):
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
