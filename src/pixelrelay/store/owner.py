"""One owner per SQLite file: an OS lock on `<db>.lock`, holding who owns it for the message."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from datetime import UTC, datetime

from pixelrelay.clock import SystemClock
from pixelrelay.errors import DatabaseInUse


class OwnerLock:
    """An exclusive flock(2) on a file beside the database.

    The kernel drops the lock when its holder exits, even by kill -9, so a stale lock never
    needs cleaning up; the file itself stays (removing a lock file races with the next owner).
    flock is only as good as the file system: on NFS and similar it may not exclude anything.
    """

    def __init__(self, db_path: str) -> None:
        self.path = f"{db_path}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise DatabaseInUse(self.path[: -len(".lock")], holder) from None
        except BaseException:
            os.close(fd)
            raise
        started = datetime.fromtimestamp(SystemClock().now(), UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, started {started}\n"
                  .encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # a reader that slips in before the next owner sees nobody
            os.close(fd)  # closing the last descriptor releases the flock


def _read(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    # Empty: the owner has just taken the lock and not yet written who it is.
    return text or "a process that has not yet written its pid"
