"""Shared fixtures: settings for a gateway that delivers to a real emulator over loopback, and
the storage engines every storage test runs on (`engine`, `storage_url`)."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg
import pytest

from pixelrelay.config import (
    ConsentSettings,
    DeliverySettings,
    Secret,
    ServerSettings,
    Settings,
    SourceSettings,
    StorageSettings,
)
from pixelrelay.destinations.tiktok.settings import tiktok_destination
from tests.support import ServerThread

SOURCE_KEY = "test-source-key-0001"
ADMIN_TOKEN = "test-admin-token-0001"
ACCESS_TOKEN = "test-access-token-0001"
PIXEL = "C9ABC1234567890"

FAST_DELIVERY = DeliverySettings(flush_interval_s=0.02, retry_base_s=0.05, retry_cap_s=0.3,
                                 max_attempts=50, request_timeout_s=5.0, lease_s=30.0,
                                 max_qps=1000.0)


ENGINES = ("sqlite", "postgres")
# The test server: trust auth, database `test` (override with PIXELRELAY_TEST_POSTGRES).
POSTGRES = os.environ.get("PIXELRELAY_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engines", default=",".join(ENGINES),
                     help="storage engines the storage tests run on (comma-separated: "
                          "sqlite,postgres)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `engine` (and so `storage_url` and the contract suites' `store`) runs each test once
    # per engine; `@pytest.mark.engines("postgres")` narrows a test to the engines named.
    if "engine" in metafunc.fixturenames:
        chosen = [e.strip() for e in metafunc.config.getoption("engines").split(",")]
        unknown = set(chosen) - set(ENGINES)
        if unknown:
            raise pytest.UsageError(f"--engines: unknown engine(s) {sorted(unknown)}")
        marker = metafunc.definition.get_closest_marker("engines")
        if marker is not None:
            chosen = [e for e in chosen if e in marker.args]
        metafunc.parametrize("engine", chosen)


@functools.cache
def _postgres_unreachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


ABANDONED_AFTER_S = 6 * 3600  # no test runs this long: its schema is a killed run's leftover
_swept = False


def _drop_abandoned_schemas(conn: psycopg.Connection[Any]) -> None:
    """Once per test process: drop test schemas created (per their name) long ago, which only
    a run killed from outside leaves behind."""
    global _swept
    if _swept:
        return
    _swept = True
    names = [r[0] for r in conn.execute(
        r"SELECT nspname FROM pg_namespace WHERE nspname ~ '^test_[0-9]{10}_[0-9a-f]{12}$'")]
    cutoff = time.time() - ABANDONED_AFTER_S
    for name in names:
        if int(name.split("_")[1]) < cutoff:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A URL on a schema of its own (created here, dropped after), so that runs and tests
    sharing the server never see each other's rows."""
    reason = _postgres_unreachable()
    if reason is not None:
        message = f"PostgreSQL is not reachable at {POSTGRES} ({reason})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI runs every storage test on both engines")
        pytest.skip(f"{message}; start it, or pass --engines=sqlite")
    schema = f"test_{int(time.time())}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        _drop_abandoned_schemas(conn)
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextlib.contextmanager
def engine_url(engine: str, tmp_path: Path, name: str = "gw") -> Iterator[str]:
    """A fresh, empty database of `engine`: a file under tmp_path, or a PostgreSQL schema."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
    else:
        with postgres_url() as url:
            yield url


@pytest.fixture
def storage_url(engine: str, tmp_path: Path) -> Iterator[str]:
    with engine_url(engine, tmp_path) as url:
        yield url


def stored_bytes(url: str) -> bytes:
    """Everything a database holds, as bytes to search: a SQLite file with its WAL, or every
    value of every table of a PostgreSQL schema (bytea as its bytes, jsonb as JSON)."""
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        return b"".join(p.read_bytes() for p in db.parent.iterdir()
                        if p.name.startswith(db.name))
    out = []
    with psycopg.connect(url) as pg:
        tables = pg.execute("SELECT tablename FROM pg_tables "
                            "WHERE schemaname = current_schema()").fetchall()
        for (table,) in tables:
            for row in pg.execute(f"SELECT * FROM {table}"):
                out += [v if isinstance(v, bytes) else orjson.dumps(v, default=str)
                        for v in row]
    return b"\n".join(out)


def count_rows(url: str, table: str) -> int:
    """Rows in one table of a storage URL's database (tests look beneath the store)."""
    query = f"SELECT count(*) FROM {table}"
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):])) as conn:
            return int(conn.execute(query).fetchone()[0])
    with psycopg.connect(url) as pg:
        row = pg.execute(query).fetchone()
        return 0 if row is None else int(row[0])


def make_settings(db: Path | str, api_url: str, *, delivery: DeliverySettings = FAST_DELIVERY,
                  consent: ConsentSettings | None = None, **dest: Any) -> Settings:
    """`db`: a SQLite file, or a storage URL (the `storage_url` fixture's)."""
    dest.setdefault("name", "tiktok")
    dest.setdefault("access_token", Secret(ACCESS_TOKEN))
    destination = tiktok_destination(pixel_code=dest.pop("pixel_code", PIXEL), api_url=api_url,
                                     **dest)
    return Settings(
        server=ServerSettings(admin_token=Secret(ADMIN_TOKEN)),
        storage=StorageSettings(url=db if isinstance(db, str) else f"sqlite:///{db}"),
        sources=(SourceSettings(name="backend", kind="server", key=Secret(SOURCE_KEY)),),
        destinations=(destination,),
        delivery=delivery,
        consent=consent or ConsentSettings(),
    )


@pytest.fixture
def emulator() -> Iterator[ServerThread]:
    from pixelrelay.emulator import Emulator, create_emulator_app

    app = create_emulator_app(Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL]))
    with ServerThread(app) as server:
        yield server


def emu_state(server: ServerThread) -> Any:
    return server.server.config.app.state.emulator  # type: ignore[attr-defined]


META_TOKEN = "meta-test-token"
META_PIXEL = "123456789012345"


@pytest.fixture
def meta() -> Iterator[ServerThread]:
    """Meta's emulator mounted at /_meta, as `serve` mounts it: api_url is {url}/_meta."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from pixelrelay.emulator.meta import MetaEmulator, create_meta_emulator_app

    emu = MetaEmulator(access_tokens=[META_TOKEN], pixel_ids=[META_PIXEL])
    outer = Starlette(routes=[Mount("/_meta", app=create_meta_emulator_app(emu))])
    outer.state.meta_emulator = emu
    with ServerThread(outer) as server:
        yield server


def meta_state(server: ServerThread) -> Any:
    return server.server.config.app.state.meta_emulator  # type: ignore[attr-defined]


def meta_events(server: ServerThread) -> list[dict[str, Any]]:
    """What Meta's emulator accepted, oldest first."""
    return list(meta_state(server).events)
