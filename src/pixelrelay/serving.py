"""How the commands run: the port bound first, then uvicorn on that socket, a clean startup;
or, for `deliver` without a port, no HTTP at all until a signal. SIGINT and SIGTERM stop
either gracefully, and the process then exits 0: the stop was asked for, not a crash."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType

import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from pixelrelay import heap
from pixelrelay.errors import PixelrelayError
from pixelrelay.ops import OpsError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, before anything else starts (OpsError when taken).

    uvicorn on its own binds only after the app's startup, i.e. after the delivery workers
    have started: a second gateway whose port is taken would deliver and then fail.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart over TIME_WAIT
        sock.bind((host, port))
        # listen() now: on Linux two sockets with SO_REUSEADDR may both bind while neither
        # listens, so only listening claims the port.
        sock.listen(2048)
    except (OSError, OverflowError) as exc:  # OverflowError: a port beyond 65535
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OpsError(f"{host}:{port}", f"cannot listen ({reason}); is another server running "
                                         "there? choose another --port or server.port") from None
    return sock


def exit_with(supervisor_pid: int, every_s: float = 1.0) -> None:
    """SIGTERM this process once its supervisor is gone (a `serve --workers` supervisor
    killed with -9 cannot stop its workers itself): they stop as on any signal."""

    def watch() -> None:
        while os.getppid() == supervisor_pid:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="pixelrelay-supervisor-watch", daemon=True).start()


class _Lifespan:
    """The app's lifespan for uvicorn, with an expected startup failure (another process owns
    the database, the store cannot open) kept as a value: uvicorn would log it as a traceback,
    and the command prints one line naming the cause instead."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.error: PixelrelayError | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        started = False
        try:
            async with self.app.router.lifespan_context(self.app):
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except PixelrelayError as exc:
            if started:
                raise
            self.error = exc
            await send({"type": "lifespan.startup.failed", "message": ""})
            return
        await send({"type": "lifespan.shutdown.complete"})


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.stopped_by: signal.Signals | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM start uvicorn's graceful stop, as uvicorn's own does, without
        its ending: it raises the signal again once stopped, so the process died by it (a
        KeyboardInterrupt traceback for Ctrl-C, 143 for SIGTERM), which reads as a crash."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(sig)
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.on_started()


def collect_garbage_less_often() -> None:
    """The cyclic collector's young generation at 50,000 allocations instead of 700.

    One 500-event request parses into some 30,000 dicts and lists that live until its answer:
    at 700 the collector ran dozens of times per request, walking that data and every older
    object each time it reached the older generations, about a sixth of ingest's CPU
    (bench.ingest: batch and single events 13-18 % faster). Request data frees itself by
    reference counting; cycles, which are rare here, are still collected, only later.
    """
    gc.set_threshold(50_000, 20, 20)


def run(app: Starlette, sock: socket.socket,
        on_started: Callable[[], None]) -> signal.Signals | None:
    """Serve `app` on `sock` until SIGINT/SIGTERM; `on_started` once startup succeeded.
    Returns the signal that stopped it, after the graceful stop.

    Raises the PixelrelayError that stopped the startup (nothing was served then).
    """
    collect_garbage_less_often()
    lifespan = _Lifespan(app)
    # proxy_headers off: the client address is read by pixelrelay itself, from
    # X-Forwarded-For only when the peer is in server.trusted_proxies (uvicorn would trust
    # 127.0.0.1 whatever the config says).
    config = uvicorn.Config(lifespan, access_log=False, log_level="warning", lifespan="on",
                            proxy_headers=False)
    server = _Server(config, on_started)
    uvicorn_log = logging.getLogger("uvicorn.error")

    def quiet(record: logging.LogRecord) -> bool:
        # uvicorn's "Application startup failed" would precede our line and say less.
        return lifespan.error is None or not record.getMessage().startswith("Application")

    uvicorn_log.addFilter(quiet)
    heap.large_blocks_on_own_pages()
    stop_trimming = heap.trim_periodically()
    try:
        server.run(sockets=[sock])
    except SystemExit:
        if lifespan.error is not None:
            raise lifespan.error from None
        raise
    finally:
        stop_trimming()
        uvicorn_log.removeFilter(quiet)
        sock.close()
    if lifespan.error is not None:
        raise lifespan.error
    return server.stopped_by


def run_until_signalled(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]],
                        on_started: Callable[[], None]) -> signal.Signals | None:
    """Run `start`, then wait for SIGINT/SIGTERM and run `stop`: a process with no HTTP.
    Returns the signal, after `stop`.

    Raises the PixelrelayError that stopped `start` (which then started nothing).
    """
    collect_garbage_less_often()
    stopped_by: list[signal.Signals] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        def on_signal(sig: signal.Signals) -> None:
            stopped_by.append(sig)
            stopping.set()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
        await start()
        try:
            on_started()
            await stopping.wait()
        finally:
            await stop()

    heap.large_blocks_on_own_pages()
    stop_trimming = heap.trim_periodically()
    try:
        asyncio.run(main())
    finally:
        stop_trimming()
    return stopped_by[0] if stopped_by else None


def stopped(command: str, sig: signal.Signals | None) -> int:
    """Say that a signal stopped `command` once its work in flight finished; exit code 0."""
    if sig is not None:
        print(f"pixelrelay {command}: stopped by {sig.name}, work in flight finished",
              flush=True)
    return 0
