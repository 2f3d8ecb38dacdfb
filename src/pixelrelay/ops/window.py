"""Time arguments of the ops commands: ISO 8601 or relative (`24h`, `7d`), and a time window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pixelrelay.ops import OpsError

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_HELP = "use ISO 8601 (2026-04-23T11:00:00Z, 2026-04-23) or a relative age such as 30m, 24h, 7d"


def parse_time(text: str, now: float, flag: str) -> float:
    """Unix seconds for `text`; a relative value means that long before `now`."""
    s = text.strip()
    m = _RELATIVE.fullmatch(s.lower())
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except ValueError:
        raise OpsError(flag, f"{text!r} is not a time; {_HELP}") from None
    # A naive time is taken as UTC: servers and order exports rarely agree on a local zone.
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval [since, until) of Unix seconds; None means unbounded."""

    since: float | None = None
    until: float | None = None

    def contains(self, t: float) -> bool:
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)


def make_window(since: str | None, until: str | None, now: float) -> Window:
    w = Window(None if since is None else parse_time(since, now, "--since"),
               None if until is None else parse_time(until, now, "--until"))
    if w.since is not None and w.until is not None and w.since >= w.until:
        raise OpsError("--since", "must be earlier than --until")
    return w


def iso(t: float | None) -> str:
    """A compact UTC rendering for tables and CSV files."""
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
