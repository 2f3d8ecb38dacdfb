"""Configuration: SPEC 3.2 keys, ${VAR}, errors that name the key and never show a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pixelrelay.config import load_settings, parse_settings, read_settings
from pixelrelay.errors import ConfigError, ConfigErrors

FULL = """
[server]
host = "0.0.0.0"
port = 9090
admin_token = "${ADMIN}"

[storage]
url = "sqlite:///x.db"

[[sources]]
name = "backend"
kind = "server"
key = "${BACKEND_KEY}"
allowed_origins = []

[[sources]]
name = "shop"
kind = "shopify"
secret = "${SHOP_SECRET}"

[[destinations]]
name = "tiktok"
type = "tiktok"
pixel_code = "C9ABC1234567890"
access_token = "${TIKTOK_ACCESS_TOKEN}"
api_url = "http://127.0.0.1:9000/"
test_event_code = "TEST123"
events = ["*"]
exclude_events = ["Pageview"]
exclude_order_sources = ["tiktok_shop"]
batch_size = 500
max_age_days = 3
default_phone_region = "de"
[destinations.event_map]
Purchase = "Purchase"
"""
ENV = {"ADMIN": "adm-secret-123456", "BACKEND_KEY": "bk-secret-123456",
       "SHOP_SECRET": "shop-secret", "TIKTOK_ACCESS_TOKEN": "tok-secret-abcdefgh"}


def test_full_spec_config_parses(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(FULL)
    s = load_settings(f, ENV)
    assert (s.server.host, s.server.port) == ("0.0.0.0", 9090)
    assert s.server.admin_token.reveal() == "adm-secret-123456"
    assert [x.kind for x in s.sources] == ["server", "shopify"]
    d = s.destination("tiktok")
    assert d.access_token.reveal() == "tok-secret-abcdefgh"
    assert d.api_url == "http://127.0.0.1:9000"  # trailing slash trimmed; the path adds its own
    assert (d.batch_size, d.max_age_days, d.default_phone_region) == (500, 3, "DE")
    assert (s.storage.url, s.storage.retention_days) == ("sqlite:///x.db", 30)  # the default
    assert d.event_map == {"Purchase": "Purchase"}
    assert d.exclude_order_sources == ("tiktok_shop",)
    assert "tok-secret" not in repr(s)


@pytest.mark.parametrize(("patch", "key", "reason"), [
    ('batch_size = 500', "destinations[0].batch_size", "between 1 and 1000"),
    ('pixel_code = "C9ABC1234567890"', "destinations[0].pixel_code", "required"),
    ('type = "tiktok"', "destinations[0].type", "unknown destination type"),
    ('max_age_days = 3', "destinations[0].bogus", "unknown key"),
    ('url = "sqlite:///x.db"', "storage.retention_days", "between 3 and 36500"),
    ('url = "sqlite:///x.db"', "storage.bogus", "unknown key"),
])
def test_errors_name_the_key(patch: str, key: str, reason: str) -> None:
    import tomllib
    storage = {"storage.retention_days": 'url = "sqlite:///x.db"\nretention_days = 2',
               "storage.bogus": 'url = "sqlite:///x.db"\nbogus = 1'}
    replacement = storage.get(key) or {"batch_size = 500": "batch_size = 5000",
                   'pixel_code = "C9ABC1234567890"': "",
                   'type = "tiktok"': 'type = "snapchat"',
                   "max_age_days = 3": "max_age_days = 3\nbogus = 1"}[patch]
    raw = tomllib.loads(FULL.replace(patch, replacement))
    with pytest.raises(ConfigError) as err:
        parse_settings(raw, ENV)
    assert err.value.key == key
    assert reason in err.value.reason


def test_missing_env_var_names_key_and_variable_not_values() -> None:
    import tomllib
    env = dict(ENV)
    del env["TIKTOK_ACCESS_TOKEN"]
    with pytest.raises(ConfigError) as err:
        parse_settings(tomllib.loads(FULL), env)
    assert err.value.key == "destinations[0].access_token"
    assert "TIKTOK_ACCESS_TOKEN" in str(err.value)
    for secret in ENV.values():
        assert secret not in str(err.value)


def test_cli_config_error_exits_nonzero_without_secret(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(FULL.replace("batch_size = 500", "batch_size = 0"))
    run = [sys.executable, "-m", "pixelrelay.cli"]
    env = {**ENV, "PATH": "/usr/bin"}
    # check found an error in what it was asked to check: 1, as for any other error.
    proc = subprocess.run([*run, "check", "--config", str(f), "--offline"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "error: destinations[0].batch_size: must be between" in proc.stdout
    assert all(s not in proc.stderr + proc.stdout for s in ENV.values())
    # serve cannot start on it: 2, the key named on stderr.
    proc = subprocess.run([*run, "serve", "--config", str(f)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "destinations[0].batch_size" in proc.stderr and "Traceback" not in proc.stderr
    assert all(s not in proc.stderr + proc.stdout for s in ENV.values())


def test_every_problem_is_found_in_one_reading() -> None:
    import tomllib
    raw = tomllib.loads(FULL.replace("allowed_origins = []", "allowed_orgins = []")
                        .replace('url = "sqlite:///x.db"', 'url = "mysql://u:pw@db/x"')
                        .replace("batch_size = 500", "batch_size = 5000")
                        .replace('pixel_code = "C9ABC1234567890"', 'pixel_code = "C9 ABC"')
                        + '[sessions]\ncookie_domian = "shop.example"\n[telemetry]\n')
    env = dict(ENV)
    del env["TIKTOK_ACCESS_TOKEN"]
    with pytest.raises(ConfigErrors) as err:
        parse_settings(raw, env)
    got = {e.key: e.reason for e in err.value.errors}
    assert got == {
        "telemetry": got["telemetry"],
        "storage.url": got["storage.url"],
        "sources[0].allowed_orgins": 'unknown key; did you mean "allowed_origins"?',
        "destinations[0].access_token": "environment variable TIKTOK_ACCESS_TOKEN is not set",
        "destinations[0].batch_size": "must be between 1 and 1000, got 5000",
        "destinations[0].pixel_code": "must be letters and digits, like C9ABC1234567890",
        "sessions.cookie_domian": 'unknown key; did you mean "cookie_domain"?',
    }
    assert got["telemetry"].startswith("unknown section")
    assert got["storage.url"].startswith("mysql is not supported")
    # As a ConfigError it names the first; its message lists every one, one a line, and no
    # secret or password.
    assert (err.value.key, str(err.value).splitlines()[0]) == ("telemetry", "7 config errors:")
    assert "  sessions.cookie_domian: unknown key" in str(err.value)
    assert all(s not in str(err.value) for s in [*ENV.values(), "pw"])


def test_a_destination_types_own_keys_are_read_to_the_last_error() -> None:
    raw = {"destinations": [{"name": "meta", "type": "meta", "access_token": "t",
                             "pixel_id": "abc", "api_version": "25"},
                            {"name": "odd", "type": "snapchat", "access_token": "t",
                             "pixel_code": "C9ABC1234567890", "pixle_id": "1"}]}
    settings, errors = read_settings(raw, ENV)
    assert [(e.key, e.reason.split(" (")[0].split(";")[0]) for e in errors] == [
        ("destinations[0].pixel_id", "must be the digits of a Meta pixel or dataset id, as "
                                     "Events Manager shows it"),
        ("destinations[0].api_version", "must be a Graph API version such as v25.0"),
        ("destinations[1].type", "unknown destination type 'snapchat'"),
        ("destinations[1].pixle_id", "unknown key"),
    ]
    assert 'did you mean "pixel_id"?' in errors[3].reason  # any type's keys are known
    # The settings stand with the wrong parts unparsed: what check's other findings read.
    assert [d.platform for d in settings.destinations] == [None, None]


@pytest.mark.parametrize(("url", "reason"), [
    ("sqlite://pixelrelay.db", "three slashes before the file's path (four for an absolute "
                               "one): sqlite:///pixelrelay.db"),
    ("pixelrelay.db", "a bare path is not a storage URL: write sqlite:///pixelrelay.db"),
    ("/var/lib/pixelrelay.db", "write sqlite:////var/lib/pixelrelay.db"),
    ("mysql://user:pw@db/pixels", "mysql is not supported"),
    ("postgresql+psycopg://db/pixels", "no driver suffix"),
    ("sqlite:///", "needs a file path"),
])
def test_storage_urls_serve_cannot_open_are_config_errors(url: str, reason: str) -> None:
    from pixelrelay.store import open_store
    with pytest.raises(ConfigError) as err:
        parse_settings({"storage": {"url": url}}, ENV)
    assert (err.value.key, reason in err.value.reason) == ("storage.url", True)
    assert "pw" not in err.value.reason
    with pytest.raises(ConfigError) as at_open:  # serve's own parsing says the same
        open_store(url)
    assert at_open.value.reason == err.value.reason


def test_cli_check_masks_secrets(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(FULL)
    # --offline: nothing listens on the config's api_url; the probe is tested elsewhere.
    proc = subprocess.run([sys.executable, "-m", "pixelrelay.cli", "check", "--config", str(f),
                           "--offline"],
                          capture_output=True, text=True, env={**ENV, "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '[[destinations]]  # destinations[0]\n  name = "tiktok"' in proc.stdout
    assert 'pixel_code = "C9ABC1234567890"' in proc.stdout
    assert all(s not in proc.stdout for s in ENV.values())


def test_trusted_proxies_and_new_keys_are_checked_when_read() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"server": {"trusted_proxies": ["10.0.0.0/8", "proxy.local"]}}, ENV)
    assert err.value.key == "server.trusted_proxies[1]" and "network" in err.value.reason
    s = parse_settings({"server": {"trusted_proxies": ["10.0.0.0/8", "::1"]},
                        "sessions": {"purchase_hold_s": 2.5},
                        "sources": [{"name": "shop", "kind": "shopify", "secret": "s",
                                     "assume": "denied"}]}, ENV)
    assert s.server.trusted_proxies == ("10.0.0.0/8", "::1")
    assert s.sessions.purchase_hold_s == 2.5 and s.sources[0].assume == "denied"
    with pytest.raises(ConfigError) as err:
        parse_settings({"sources": [{"name": "shop", "kind": "shopify", "secret": "s",
                                     "assume": "maybe"}]}, ENV)
    assert err.value.key == "sources[0].assume"
