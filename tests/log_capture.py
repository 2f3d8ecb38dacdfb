"""Capture every log record, uvicorn's included (its logger does not propagate to the root)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        """Records that carry a traceback, as text, so a failing assertion shows them."""
        return [self.format(r) for r in self.records
                if r.exc_info or "Traceback" in r.getMessage()]

    def at_least(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level]


@contextlib.contextmanager
def captured_logs(*names: str) -> Iterator[Records]:
    """Records of the root and uvicorn loggers at DEBUG and up (plus `names`) while open.

    Enter it after constructing a ServerThread: uvicorn.Config re-applies its logging config,
    which replaces the handlers of the uvicorn logger.
    """
    handler = Records()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", *names)]
    ours = logging.getLogger("pixelrelay")
    level = ours.level
    for lg in loggers:
        lg.addHandler(handler)
    # Debug lines must be seen to be counted; uvicorn's own stay at the level it was given.
    ours.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        ours.setLevel(level)
