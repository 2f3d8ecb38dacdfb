"""Configuration of the browser source and the [sessions] table."""

from __future__ import annotations

import logging

import pytest

from pixelrelay.config import SessionSettings, parse_settings
from pixelrelay.errors import ConfigError

SITE = {"name": "site", "kind": "browser", "key": "k", "allowed_origins": ["https://shop.test"]}


def test_defaults() -> None:
    s = parse_settings({"sources": [SITE]}, {})
    assert s.sessions == SessionSettings(click_id_cookie_days=30, session_cookie_days=1,
                                         identity_window_days=7, cookie_domain="")
    assert not s.sources[0].consent_required and not s.sources[0].page_views


def test_sessions_and_browser_keys_are_read() -> None:
    s = parse_settings({"sources": [{**SITE, "consent_required": True, "page_views": True}],
                        "sessions": {"click_id_cookie_days": 7, "identity_window_days": 3,
                                     "cookie_domain": ".Shop.Test"}}, {})
    assert s.sources[0].consent_required and s.sources[0].page_views
    assert s.sessions.click_id_cookie_days == 7 and s.sessions.identity_window_days == 3
    assert s.sessions.cookie_domain == "shop.test"


def test_the_old_name_of_the_click_id_cookie_days_is_read_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pixelrelay.config"):
        s = parse_settings({"sessions": {"ttclid_cookie_days": 9}}, {})
    assert s.sessions.click_id_cookie_days == 9
    assert "sessions.ttclid_cookie_days is deprecated; it is now " \
           "sessions.click_id_cookie_days" in caplog.text


@pytest.mark.parametrize(("raw", "path"), [
    ({"sessions": {"ttl": 1}}, "sessions.ttl"),
    ({"sessions": {"click_id_cookie_days": 0}}, "sessions.click_id_cookie_days"),
    ({"sessions": {"ttclid_cookie_days": 7, "click_id_cookie_days": 7}},
     "sessions.ttclid_cookie_days"),
    ({"sessions": {"cookie_domain": "a b"}}, "sessions.cookie_domain"),
    ({"sources": [{**SITE, "page_views": "yes"}]}, "sources[0].page_views"),
])
def test_mistakes_name_the_key(raw: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(raw, {})
    assert path in str(err.value)
