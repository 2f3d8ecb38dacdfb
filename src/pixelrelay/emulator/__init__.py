"""An independent TikTok Events API v1.3 emulator: judges what pixelrelay delivers."""

from pixelrelay.emulator.app import TRACK_PATH, create_emulator_app
from pixelrelay.emulator.contract import validate_request
from pixelrelay.emulator.faults import Faults
from pixelrelay.emulator.state import Emulator, RequestLog

__all__ = [
    "TRACK_PATH",
    "Emulator",
    "Faults",
    "RequestLog",
    "create_emulator_app",
    "validate_request",
]
