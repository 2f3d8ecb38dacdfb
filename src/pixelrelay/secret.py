"""Secret: a configured credential that never shows itself in repr, str or an error."""

from __future__ import annotations

import hmac


class Secret:
    """A string that never shows itself in repr, str or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__

    def fingerprint(self) -> str:
        """A stable, non-reversible tag: tells that a token changed, never what it is."""
        digest = hmac.new(b"pixelrelay/token-fingerprint", self._value.encode(), "sha256")
        return digest.hexdigest()[:16]

    def masked(self) -> str:
        v = self._value
        return "(empty)" if not v else ("****" + v[-4:] if len(v) > 12 else "****")
