"""Whether a stored event carries a match key, and what ingest dropped of them: a trace says
so in words instead of leaving it to the raw JSON. Reads the stored body (store.codec)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# User fields that identify nobody on their own; IP and user agent count as a pair, as the
# dashboard's ip_ua does. Every other user field (hashed ids, click and browser ids, names and
# address, mobile ad ids) is a match key.
_NOT_KEYS = frozenset({"locale", "att_status", "ip", "user_agent"})


def carries_match_key(user: Mapping[str, Any]) -> bool:
    keys = {k for k, v in user.items() if v not in (None, "", [], ())}
    return bool(keys - _NOT_KEYS) or {"ip", "user_agent"} <= keys


def dropped_user_fields(warnings: Sequence[Any]) -> list[str]:
    """"email dropped: not a valid email address", one per user field ingest dropped (bad
    values and unknown keys); warnings name the field and the reason, never the value."""
    out = []
    for w in warnings:
        if not isinstance(w, (list, tuple)) or len(w) < 3 or w[2] == "unverified":
            continue  # a body of an older version (plain strings), or a value that was kept
        field, reason = str(w[0]), str(w[1])
        if field.startswith("user."):
            why = reason.removesuffix("; dropped").removesuffix("; removed")
            out.append(f"{field.removeprefix('user.')} dropped: {why}")
    return out


def match_key_note(event: Mapping[str, Any], sent: bool) -> str | None:
    """One line for the trace's summary: the event has no match key (and why), or some of
    its match keys were dropped at ingest; None when nothing needs saying."""
    user = event.get("user") or {}
    dropped = dropped_user_fields(event.get("warnings") or ())
    if carries_match_key(user):
        return "Match keys dropped at ingest: " + "; ".join(dropped) + "." if dropped else None
    consent = event.get("consent") or {}
    why = dropped or (["removed for consent (ad_user_data denied)"]
                      if consent.get("ad_user_data") == "denied" else ["none was given"])
    head = "Sent without match keys" if sent else "No match keys"
    return (f"{head}: " + "; ".join(why) + ". The platform cannot attribute it to a person "
            "or a click.")
