"""The code standards as tests: ruff clean, mypy --strict clean, layering rules kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True)


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff")
                    .exists(), reason="ruff not installed")
def test_ruff_clean() -> None:
    proc = run("ruff", "check", "src", "tests", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_clean() -> None:
    proc = run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_benchmarks_type_check() -> None:
    """Benchmarks are not run by the suite; type-checking them keeps them from rotting when
    an interface they call changes."""
    proc = run("mypy", "--strict", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_layer_contracts_hold() -> None:
    """The import rules of pyproject.toml's [tool.importlinter], checked by import-linter."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_records_are_frozen_to_the_type_checker(tmp_path: Path) -> None:
    """`pixelrelay.records.record` gives up frozen's run-time guard for speed; mypy must
    still refuse an assignment to an Event's field, or the guard is gone altogether."""
    probe = tmp_path / "probe.py"
    probe.write_text("from pixelrelay.model import Event\n"
                     "def f(e: Event) -> None:\n"
                     "    e.name = 'Purchase'\n")
    proc = run("mypy", "--strict", "--no-incremental", str(probe))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Property "name" defined in "Event" is read-only' in proc.stdout
