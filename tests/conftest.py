"""Shared fixtures: settings for a gateway that delivers to a real emulator over loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelrelay.config import (
    ConsentSettings,
    DeliverySettings,
    DestinationSettings,
    Secret,
    ServerSettings,
    Settings,
    SourceSettings,
    StorageSettings,
)
from tests.support import ServerThread

SOURCE_KEY = "test-source-key-0001"
ADMIN_TOKEN = "test-admin-token-0001"
ACCESS_TOKEN = "test-access-token-0001"
PIXEL = "C9ABC1234567890"

FAST_DELIVERY = DeliverySettings(flush_interval_s=0.02, retry_base_s=0.05, retry_cap_s=0.3,
                                 max_attempts=50, request_timeout_s=5.0, lease_s=30.0,
                                 max_qps=1000.0)


def make_settings(db: Path, api_url: str, *, delivery: DeliverySettings = FAST_DELIVERY,
                  consent: ConsentSettings | None = None, **dest: Any) -> Settings:
    destination = DestinationSettings(name="tiktok", pixel_code=PIXEL,
                                      access_token=Secret(ACCESS_TOKEN), api_url=api_url)
    return Settings(
        server=ServerSettings(admin_token=Secret(ADMIN_TOKEN)),
        storage=StorageSettings(url=f"sqlite:///{db}"),
        sources=(SourceSettings(name="backend", kind="server", key=Secret(SOURCE_KEY)),),
        destinations=(dataclasses.replace(destination, **dest),),
        delivery=delivery,
        consent=consent or ConsentSettings(),
    )


@pytest.fixture
def emulator() -> Iterator[ServerThread]:
    from pixelrelay.emulator import Emulator, create_emulator_app

    app = create_emulator_app(Emulator(access_tokens=[ACCESS_TOKEN], pixel_codes=[PIXEL]))
    with ServerThread(app) as server:
        yield server


def emu_state(server: ServerThread) -> Any:
    return server.server.config.app.state.emulator  # type: ignore[attr-defined]
