"""What diagnostics store of a refusal or a notice: our own reason text and field paths,
with anything shaped like a value (an email address, a phone number) masked."""

from __future__ import annotations

import re

_EMAIL_LIKE = re.compile(r"[^\s@]+@[^\s@]+")
_LONG_NUMBER = re.compile(r"\+?\d[\d ()./-]{6,}\d")


def mask_reason(reason: str) -> str:
    """A reason as stored: our own text, unchanged (what varies per event is in the
    Problem's detail, which is never stored); anything shaped like an email address or a
    phone number is masked, should a value ever reach a reason."""
    return _LONG_NUMBER.sub("<number>", _EMAIL_LIKE.sub("<email>", reason))[:200]


_NUMBERS = re.compile(r"\d+")


def mask_field(field: str) -> str:
    """user.email.3 -> user.email.N; from a key holding an "@" on -> <key>: a sender that
    used values as keys must not get an email address stored through a key name."""
    at = field.find("@")
    if at >= 0:
        field = field[:field.rfind(".", 0, at) + 1] + "<key>"
    return _NUMBERS.sub("N", field)[:128]
