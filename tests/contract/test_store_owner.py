"""One owner per SQLite file: the owner's lock refuses a second owner, never a tool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixelrelay.errors import DatabaseInUse
from pixelrelay.store import open_store


async def test_a_second_owner_is_refused_naming_the_first_while_tools_attach(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    owner = open_store(url)
    await owner.open()
    try:
        second = open_store(url)
        with pytest.raises(DatabaseInUse, match=f"pid {os.getpid()} on host "):
            await second.open()
        tool = open_store(url, recover_in_flight=False)  # replay, import, report, check
        await tool.open()
        await tool.close()
    finally:
        await owner.close()
    again = open_store(url)  # closing released it
    await again.open()
    await again.close()
