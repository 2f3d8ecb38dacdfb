"""The code standards as tests: ruff clean, mypy --strict clean, layering rules kept."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "src" / "pixelrelay"


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


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(("folder", "banned"), [
    ("pipeline", ("httpx", "sqlite3", "psycopg", "starlette", "asyncio", "pixelrelay.store",
                  "pixelrelay.delivery")),
    ("destinations", ("httpx", "sqlite3", "psycopg", "starlette", "pixelrelay.store",
                      "pixelrelay.delivery")),
    ("emulator", ("pixelrelay.pipeline", "pixelrelay.destinations", "pixelrelay.store",
                  "pixelrelay.delivery", "pixelrelay.ingest")),
    ("store", ("httpx", "starlette", "pixelrelay.delivery", "pixelrelay.sources")),
])
def test_layers(folder: str, banned: tuple[str, ...]) -> None:
    for path in (PKG / folder).rglob("*.py"):
        for name in imports_of(path):
            assert not name.startswith(banned), f"{path.relative_to(ROOT)} imports {name}"


def test_only_sender_imports_httpx_in_delivery() -> None:
    for path in (PKG / "delivery").rglob("*.py"):
        if path.name != "sender.py":
            assert not any(n.startswith("httpx") for n in imports_of(path)), path
