"""The emulators `serve` mounts in sandbox mode, one per destination type, by the mount path
each sandbox destination's api_url points at."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.types import ASGIApp

from pixelrelay.emulator.app import create_emulator_app
from pixelrelay.emulator.meta import MetaEmulator, create_meta_emulator_app
from pixelrelay.emulator.state import Emulator

# type -> (mount path, app from the access tokens and the ids it accepts)
EMULATORS: dict[str, tuple[str, Callable[[Sequence[str], Sequence[str]], ASGIApp]]] = {
    "tiktok": ("/_emulator", lambda tokens, ids: create_emulator_app(
        Emulator(access_tokens=list(tokens), pixel_codes=list(ids)))),
    "meta": ("/_meta", lambda tokens, ids: create_meta_emulator_app(
        MetaEmulator(access_tokens=list(tokens), pixel_ids=list(ids)))),
}
