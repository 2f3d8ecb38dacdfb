"""Hostile clients over real HTTP: aborted uploads, stalled bodies, oversized logins."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from pathlib import Path

import httpx

from pixelrelay.app import create_app
from pixelrelay.config import Settings
from tests.conftest import SOURCE_KEY, make_settings
from tests.log_capture import captured_logs
from tests.support import ServerThread

NOWHERE = "http://127.0.0.1:9"  # nothing here is delivered
AUTH = f"Authorization: Bearer {SOURCE_KEY}\r\n"


def settings(tmp_path: Path, **server: object) -> Settings:
    s = make_settings(tmp_path / "h.db", NOWHERE)
    return dataclasses.replace(s, server=dataclasses.replace(s.server, **server))


def head(path: str, length: int, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: gw\r\n{extra}Content-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def answer(sock: socket.socket, limit_s: float = 20.0) -> bytes:
    """Everything the server sends until it closes the connection (or `limit_s` passes)."""
    sock.settimeout(limit_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_aborted_uploads_are_one_debug_line_each(tmp_path: Path) -> None:
    server = ServerThread(create_app(settings(tmp_path)))
    with server as gw, captured_logs() as logs:
        for i in range(40):
            path, extra = [("/v1/events", AUTH), ("/login", ""), ("/v1/collect", ""),
                           ("/open_api/v1.3/event/track/", f"Access-Token: {SOURCE_KEY}\r\n")
                           ][i % 4]
            with socket.create_connection(("127.0.0.1", gw.port)) as sock:
                sock.sendall(head(path, 2000, extra) + b'{"events": [')
                time.sleep(0.02)  # let the handler start reading before the client leaves
        # A request after them proves the server has processed the aborts in order.
        assert httpx.get(f"{gw.url}/healthz").status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(logs.records) < 40:
            time.sleep(0.05)
    assert logs.tracebacks() == []
    assert logs.at_least(logging.INFO) == []
    left = [r for r in logs.records if "before sending its whole body" in r.getMessage()]
    assert len(left) == 40 and len(logs.records) == 40


def test_a_stalled_or_trickling_body_is_cut_off_with_408(tmp_path: Path) -> None:
    with ServerThread(create_app(settings(tmp_path, body_timeout_s=0.5))) as gw:
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(head("/v1/events", 1000, AUTH) + b'{"events": [')
            got = answer(sock)
        assert got.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in got
        assert b"connection: close" in got.lower()
        # A byte every 0.1 s never stalls long, but the whole body still has one deadline.
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(head("/login", 100))
            sock.settimeout(0.1)
            got = b""
            for _ in range(100):  # 100 bytes complete the body: then login would answer 401
                try:
                    sock.sendall(b"t")
                    got = sock.recv(65536)
                    break
                except TimeoutError:
                    continue
        assert got.startswith(b"HTTP/1.1 408 ")
        ok = httpx.post(f"{gw.url}/v1/events", headers={"Authorization": f"Bearer {SOURCE_KEY}"},
                        json={"event": "ViewContent", "event_id": "after-stall"})
        assert ok.status_code == 202


def test_login_refuses_an_oversized_form_before_reading_it(tmp_path: Path) -> None:
    with ServerThread(create_app(settings(tmp_path))) as gw:
        # 96 MiB declared, nothing sent: refused on the header alone, at once.
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(head("/login", 96 * 1024 * 1024))
            got = answer(sock, 10)
        assert got.startswith(b"HTTP/1.1 413 ")  # and closed: answer() read until the close

        def chunks() -> object:
            for _ in range(64):
                yield b"token=" + b"x" * 1024

        streamed = httpx.post(f"{gw.url}/login", content=chunks(),  # type: ignore[arg-type]
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert streamed.status_code == 413
