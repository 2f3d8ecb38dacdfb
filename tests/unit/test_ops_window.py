"""Time arguments of the ops commands: relative ages, ISO 8601, and the half-open window."""

from __future__ import annotations

import pytest

from pixelrelay.ops import OpsError
from pixelrelay.ops.window import Window, iso, make_window, parse_time

NOW = 1_776_943_380.0  # 2026-04-23T11:23:00Z


@pytest.mark.parametrize(("text", "ago"), [("24h", 86400), ("7d", 7 * 86400), ("30m", 1800),
                                           ("90s", 90), ("2w", 14 * 86400), ("1.5h", 5400),
                                           (" 7D ", 7 * 86400)])
def test_relative_ages_count_back_from_now(text: str, ago: float) -> None:
    assert parse_time(text, NOW, "--since") == NOW - ago


@pytest.mark.parametrize("text", ["2026-04-23T11:23:00Z", "2026-04-23T11:23:00+00:00",
                                  "2026-04-23T13:23:00+02:00", "2026-04-23T11:23:00"])
def test_iso_times_with_or_without_zone_naive_is_utc(text: str) -> None:
    assert parse_time(text, NOW, "--since") == NOW


def test_a_bad_time_names_the_flag_and_the_accepted_forms() -> None:
    with pytest.raises(OpsError) as exc:
        parse_time("yesterday", NOW, "--until")
    assert exc.value.where == "--until" and "24h" in exc.value.reason


def test_window_is_half_open_and_since_must_precede_until() -> None:
    w = make_window("2d", "1d", NOW)
    assert w.contains(NOW - 2 * 86400) and not w.contains(NOW - 86400)
    assert Window().contains(0)
    with pytest.raises(OpsError, match="--since"):
        make_window("1d", "2d", NOW)


def test_iso_renders_utc() -> None:
    assert iso(NOW) == "2026-04-23T11:23:00Z" and iso(None) == ""
