"""The emulators `serve` mounts in sandbox mode, one per destination type, by the mount path
each sandbox destination's api_url points at. Each type's emulator package builds its own app
from the access tokens and the ids it accepts, under its own names for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.types import ASGIApp

from pixelrelay.emulator import app as tiktok_app
from pixelrelay.emulator.meta import app as meta_app

# type -> (mount path, app from the access tokens and the ids it accepts)
EMULATORS: dict[str, tuple[str, Callable[[Sequence[str], Sequence[str]], ASGIApp]]] = {
    "tiktok": ("/_emulator", tiktok_app.accepting),
    "meta": ("/_meta", meta_app.accepting),
}
