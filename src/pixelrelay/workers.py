"""`serve --workers N`: N gateway processes on one port, each with its own listening socket
(SO_REUSEPORT, so the kernel spreads new connections over them), under one supervisor.

Worker 0 delivers (unless --no-delivery), the others are API only; all share the config's
database as separate `serve --no-delivery` processes would. The supervisor binds every socket
before any worker starts (a taken port starts nothing), migrates the schema once, forwards
SIGTERM/SIGINT, and stops the group when a worker dies unasked: a supervisor that restarted
workers itself would hide a crash loop from the orchestrator that should see it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

from pixelrelay.ops import OpsError
from pixelrelay.serving import bind

MAX_WORKERS = 64
STOP_TIMEOUT_S = 30.0  # a worker finishes its requests and its delivery's in-flight batches


def bind_shared(host: str, port: int, n: int) -> list[socket.socket]:
    """`n` listening sockets on host:port with SO_REUSEPORT (OpsError when the port is taken).

    A plain bind first: a port held by another group's SO_REUSEPORT sockets would otherwise
    be shared with it silently.
    """
    probe = bind(host, port)
    port = probe.getsockname()[1]
    probe.close()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
    except OSError as exc:
        for sock in socks:
            sock.close()
        raise OpsError(f"{host}:{port}", f"cannot listen ({exc.strerror or exc}); is another "
                                         "server running there?") from None
    return socks


def worker_argv(config: str, host: str, port: int, fd: int, first: bool,
                delivery: bool) -> list[str]:
    """The command line of one worker: a `serve` on an inherited socket. The first one
    delivers (unless none does) and logs the alerts, which would otherwise come N times."""
    return [sys.executable, "-m", "pixelrelay.cli", "serve", "--config", config,
            "--host", host, "--port", str(port), "--listen-fd", str(fd),
            "--supervisor-pid", str(os.getpid()),
            *([] if first and delivery else ["--no-delivery"]),
            *([] if first else ["--no-alerts"])]


def supervise(config: str, socks: Sequence[socket.socket], host: str, delivery: bool) -> int:
    """Run one worker per socket until a signal (then 0) or until one exits unasked (then
    its exit code, or 1, after stopping the others)."""
    port = socks[0].getsockname()[1]
    stopping = threading.Event()
    procs: list[subprocess.Popen[bytes]] = []
    signals: list[signal.Signals] = []

    def on_signal(signum: int, frame: object) -> None:
        signals.append(signal.Signals(signum))
        stop(signum, frame)

    def stop(signum: int, frame: object) -> None:
        stopping.set()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for i, sock in enumerate(socks):
            if stopping.is_set():
                break
            fd = sock.fileno()
            # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which
            # forwards one SIGTERM (a second signal would make uvicorn drop open requests).
            procs.append(subprocess.Popen(
                worker_argv(config, host, port, fd, i == 0, delivery), pass_fds=(fd,),
                start_new_session=True))
            sock.close()  # the worker holds it now; a dead worker's socket leaves with it
        who = "the first delivers" if delivery else "API only"
        print(f"pixelrelay: {len(procs)} workers on http://{host}:{port}, {who} "
              f"(pids {', '.join(str(p.pid) for p in procs)})", flush=True)
        code = _wait(procs, stopping)
        if signals and code == 0:
            print(f"pixelrelay serve: stopped by {signals[0].name}, {len(procs)} workers "
                  "finished their work in flight", flush=True)
        return code
    except BaseException:
        stop(signal.SIGTERM, None)  # a worker that could not start: none may outlive us
        _reap(procs)
        raise
    finally:
        for sock in socks:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(procs: list[subprocess.Popen[bytes]], stopping: threading.Event) -> int:
    code = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return code
        except InterruptedError:
            continue
        proc = next((p for p in procs if p.pid == pid), None)
        if proc is None:
            continue
        proc.returncode = os.waitstatus_to_exitcode(status)
        if not stopping.is_set():
            print(f"pixelrelay: worker {pid} exited with code {proc.returncode}; stopping the "
                  "others", file=sys.stderr, flush=True)
            code = proc.returncode if proc.returncode > 0 else 1
            stopping.set()
            for other in procs:
                if other.returncode is None:
                    other.send_signal(signal.SIGTERM)
            _reap(procs)
            return code
        if all(p.returncode is not None for p in procs):
            return code


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
