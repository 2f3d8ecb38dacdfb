"""Configuration: SPEC 3.2 keys, ${VAR}, errors that name the key and never show a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pixelrelay.config import load_settings, parse_settings
from pixelrelay.errors import ConfigError

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
    proc = subprocess.run([sys.executable, "-m", "pixelrelay.cli", "check", "--config", str(f)],
                          capture_output=True, text=True, env={**ENV, "PATH": "/usr/bin"})
    assert proc.returncode == 2
    assert "destinations[0].batch_size" in proc.stderr
    assert all(s not in proc.stderr + proc.stdout for s in ENV.values())


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
