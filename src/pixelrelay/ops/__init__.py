"""Operator commands over a gateway's database: replay, import, gap report, send a test event."""

from __future__ import annotations

from pixelrelay.errors import PixelrelayError


class OpsError(PixelrelayError):
    """A command cannot run as asked; the message names the flag, file or line and the reason."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
