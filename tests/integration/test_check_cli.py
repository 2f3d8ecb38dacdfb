"""`pixelrelay check`, `--help` and `--version` as subprocesses; the probe only reaches loopback."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pixelrelay
from pixelrelay.cli import _parser
from pixelrelay.config import Settings, StorageSettings
from pixelrelay.ops import check
from pixelrelay.ops.send_test import TEST_EVENT_ID
from pixelrelay.store import open_store
from pixelrelay.store.migrate import latest
from tests.conftest import ACCESS_TOKEN, PIXEL, SOURCE_KEY, emu_state, postgres_url
from tests.support import ServerThread, free_port

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "CHECK_TEST_TOKEN": ACCESS_TOKEN, "COLUMNS": "200"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pixelrelay.cli", *args], capture_output=True,
                          text=True, timeout=60, env=ENV)


def config(path: Path, api_url: str, extra: str = "", pixel: str = PIXEL) -> Path:
    path.write_text(f"""
[server]
admin_token = "check-admin-token-0001"
[storage]
url = "sqlite:///{path.parent / 'c.db'}"
[[sources]]
name = "backend"
key = "{SOURCE_KEY}"
[[destinations]]
name = "tiktok"
pixel_code = "{pixel}"
access_token = "${{CHECK_TEST_TOKEN}}"
api_url = "{api_url}"
{extra}
""")
    return path


def test_a_good_config_passes_and_is_shown_masked(tmp_path: Path,
                                                  emulator: ServerThread) -> None:
    r = cli("check", "--config", str(config(tmp_path / "c.toml", emulator.url)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check OK: 0 warning(s)" in r.stdout
    assert "[[destinations]]  # destinations[0]" in r.stdout and "[delivery]" in r.stdout
    for secret in (ACCESS_TOKEN, SOURCE_KEY, "check-admin-token-0001"):
        assert secret not in r.stdout + r.stderr
    assert emu_state(emulator).stats()["requests"] == 0  # the probe is a GET, never an event


def test_every_mistake_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # loopback, nothing listening
    cfg = config(tmp_path / "c.toml", nobody, pixel="C1", extra="""
[destinations.event_map]
Purchase = "Purchse"
[[sources]]
name = "site"
kind = "browser"
key = "site-key-0001"
""")
    r = cli("check", "--config", str(cfg))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith('error: destinations[0].event_map.Purchase: "Purchse" is not')
               and 'did you mean "Purchase"?' in line for line in lines)
    assert any(line.startswith(f"error: destinations[0].api_url: {nobody} is unreachable")
               for line in lines)
    assert any(line.startswith("warning: destinations[0].pixel_code:") for line in lines)
    assert any(line.startswith("warning: sources[1].allowed_origins:") for line in lines)
    assert "check failed: 2 error(s), 2 warning(s)" in r.stdout

    offline = cli("check", "--config", str(cfg), "--offline")
    assert offline.returncode == 1 and "unreachable" not in offline.stdout
    assert "check failed: 1 error(s), 2 warning(s)" in offline.stdout


def test_send_test_with_a_code_probes_a_production_destination_in_test_events(
        tmp_path: Path, emulator: ServerThread) -> None:
    cfg = config(tmp_path / "c.toml", emulator.url)  # no test_event_code: production
    before = cfg.read_text()
    r = cli("check", "--config", str(cfg), "--send-test", "--test-event-code", "TEST77")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tiktok: code=0 message='OK'" in r.stdout
    assert [(e["event_id"], e["_test_event_code"]) for e in emu_state(emulator).events] == [
        (TEST_EVENT_ID, "TEST77")]
    assert cfg.read_text() == before

    two = config(tmp_path / "two.toml", emulator.url, extra=f"""
[[destinations]]
name = "other"
pixel_code = "{PIXEL}"
access_token = "${{CHECK_TEST_TOKEN}}"
api_url = "{emulator.url}"
""")
    r = cli("check", "--config", str(two), "--offline", "--send-test",
            "--test-event-code", "TEST77")
    assert r.returncode == 2 and "--test-event-code" in r.stderr and "--destination" in r.stderr
    r = cli("check", "--config", str(cfg), "--test-event-code", "TEST77")
    assert r.returncode == 2 and "--send-test" in r.stderr
    assert emu_state(emulator).stats()["requests"] == 1


def test_help_and_version() -> None:
    r = cli("--help")
    assert r.returncode == 0
    assert r.stdout.splitlines()[2].startswith("pixelrelay: a self-hosted server-side")
    assert "parses flags" not in r.stdout  # not the module's internal docstring
    r = cli("--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"pixelrelay {pixelrelay.__version__}")
    # One place holds the version: pyproject reads it from the package.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "pixelrelay.__version__"}


def test_every_command_and_flag_has_help() -> None:
    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                for name, sub in action.choices.items():
                    if name not in helped:
                        missing.append(f"{prefix} {name}")
                    walk(sub, f"{prefix} {name}")
            elif not action.help:
                missing.append(f"{prefix} {'/'.join(action.option_strings) or action.dest}")

    walk(_parser(), "pixelrelay")
    assert missing == []


def test_every_config_error_comes_in_one_run_with_the_nearest_key(
        tmp_path: Path, emulator: ServerThread) -> None:
    # The three mistakes that took three runs: a typo'd key, an unset variable, a MySQL URL.
    cfg = config(tmp_path / "c.toml", emulator.url)
    cfg.write_text(cfg.read_text()
                   .replace(f'key = "{SOURCE_KEY}"',
                            f'key = "{SOURCE_KEY}"\nallowed_orgins = ["https://a.example"]')
                   .replace("${CHECK_TEST_TOKEN}", "${CHECK_UNSET_TOKEN}")
                   .replace(f"sqlite:///{tmp_path / 'c.db'}", "mysql://shop:hunter2@db/pixels"))
    for flags in ((), ("--offline",)):
        r = cli("check", "--config", str(cfg), *flags)
        assert r.returncode == 1, r.stdout + r.stderr
        errors = [line for line in r.stdout.splitlines() if line.startswith("error: ")]
        assert errors == [
            "error: storage.url: mysql is not supported: pixelrelay stores in SQLite or "
            "PostgreSQL (sqlite:///pixelrelay.db or postgresql://user@host:5432/database)",
            'error: sources[0].allowed_orgins: unknown key; did you mean "allowed_origins"?',
            "error: destinations[0].access_token: environment variable CHECK_UNSET_TOKEN is "
            "not set",
        ]
        assert "check failed: 3 error(s), 0 warning(s)" in r.stdout
        assert "hunter2" not in r.stdout + r.stderr
        assert "[[sources]]" not in r.stdout  # defaults would stand in for the wrong values


def test_the_database_is_opened_read_only_and_its_schema_version_checked(
        tmp_path: Path, emulator: ServerThread) -> None:
    db = tmp_path / "c.db"  # the config's database
    cfg = config(tmp_path / "c.toml", emulator.url)
    fresh = cli("check", "--config", str(cfg))
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert f"storage sqlite:///{db}: no pixelrelay schema yet; serve creates it (version " \
           f"{latest('sqlite')})" in fresh.stdout
    assert not db.exists()  # check creates nothing

    assert cli("migrate", "--config", str(cfg)).returncode == 0
    current = cli("check", "--config", str(cfg))
    assert current.returncode == 0, current.stdout + current.stderr
    assert (f"storage sqlite:///{db}: reachable, schema version {latest('sqlite')} (current)"
            in current.stdout)
    offline = cli("check", "--config", str(cfg), "--offline")
    assert offline.returncode == 0 and "reachable" not in offline.stdout

    with sqlite3.connect(db) as conn:  # as a later pixelrelay would leave it
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (latest("sqlite") + 1,))
    conn.close()
    newer = cli("check", "--config", str(cfg))
    assert newer.returncode == 1
    assert (f"error: storage.url: schema version {latest('sqlite') + 1} is newer than this "
            f"pixelrelay's ({latest('sqlite')})") in newer.stdout

    db.unlink()
    db.write_text("not a database")
    junk = cli("check", "--config", str(cfg))
    assert junk.returncode == 1
    assert f"error: storage.url: sqlite:///{db}: cannot read {db}: file is not a database" \
           in junk.stdout


def test_an_unreachable_postgresql_is_an_error_within_the_probe_timeout(tmp_path: Path) -> None:
    refused = f"postgresql://shop:hunter2@127.0.0.1:{free_port()}/pixels"
    found, line = asyncio.run(check.storage(_with_url(refused), 3.0))
    assert line == ""
    assert [(f.level, f.path) for f in found] == [("error", "storage.url")]
    assert "Connection refused" in found[0].message and "hunter2" not in found[0].message

    # A server that takes the connection and never answers: the probe's own bound, not
    # serve's 10 s of connection retries.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://127.0.0.1:{silent.getsockname()[1]}/pixels"
        found, _ = asyncio.run(check.storage(_with_url(url), 0.5))
    assert [f.message for f in found] == [f"{url}: no answer within 0.5 s (--offline skips "
                                          "this probe)"]


def test_a_reachable_postgresql_reports_its_schema_version() -> None:
    async def migrated(url: str) -> None:
        store = open_store(url, recover_in_flight=False)
        await store.open()  # opening migrates
        await store.close()

    with postgres_url() as url:
        found, line = asyncio.run(check.storage(_with_url(url), 3.0))
        assert (found, line.split(": ", 1)[1]) == (
            [], f"no pixelrelay schema yet; serve creates it (version {latest('postgres')})")
        asyncio.run(migrated(url))
        found, line = asyncio.run(check.storage(_with_url(url), 3.0))
        assert (found, line.split(": ", 1)[1]) == (
            [], f"reachable, schema version {latest('postgres')} (current)")


def _with_url(url: str) -> Settings:
    return Settings(storage=StorageSettings(url=url))
