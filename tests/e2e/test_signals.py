"""SIGINT (Ctrl-C) and SIGTERM stop serve, deliver and the emulator gracefully, and the process
exits 0 with one line saying so and no traceback: an orchestrator must not read a stop it
asked for as a crash (uvicorn alone re-raised the signal: a traceback, or exit 143)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import PIXEL, SOURCE_KEY
from tests.e2e.test_kill9 import spawn
from tests.support import free_port, wait_for

STARTED = {"serve": "pixelrelay listening on", "deliver": "pixelrelay delivering to",
           "emulator": "TikTok Events API emulator on"}


def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f"""
[server]
port = {free_port()}
[storage]
url = "sqlite:///{tmp_path / 'q.db'}"
[[sources]]
name = "backend"
key = "{SOURCE_KEY}"
[[destinations]]
name = "tiktok"
pixel_code = "{PIXEL}"
access_token = "signals-test-token"
api_url = "http://127.0.0.1:{free_port()}"
""")
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("command", ["serve", "deliver", "emulator"])
def test_a_stop_signal_ends_the_command_with_exit_0_and_one_line(
        tmp_path: Path, command: str, sig: signal.Signals) -> None:
    args = (["emulator", "--port", str(free_port())] if command == "emulator" else
            [command, "--config", str(config(tmp_path))])
    log = tmp_path / "out.log"
    proc = spawn(args, log)
    try:
        wait_for(lambda: STARTED[command] in log.read_text() or proc.poll() is not None,
                 timeout=30)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = log.read_text()
    assert code == 0, said
    assert said.count("stopped by") == 1
    assert f"pixelrelay {command}: stopped by {sig.name}, work in flight finished" in said
    assert "Traceback" not in said and "KeyboardInterrupt" not in said
