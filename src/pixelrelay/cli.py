"""The `pixelrelay` command: parses flags and calls package functions; no logic of its own."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

from pixelrelay import __version__
from pixelrelay.config import (
    SANDBOX_SOURCE_KEY,
    Settings,
    load_settings,
    read_config,
    sandbox_settings,
)
from pixelrelay.errors import PixelrelayError
from pixelrelay.ops.preflight import mask_url

DESCRIPTION = """\
pixelrelay: a self-hosted server-side conversion gateway for TikTok's Events API v1.3 and
Meta's Conversions API. It takes events from your backend, a browser tag, Shopify and files,
hashes personal data, applies consent, maps names to each platform's, queues them durably and
delivers them in batches."""
EPILOG = """\
Start here:
  pixelrelay serve                          sandbox: built-in TikTok emulator, SQLite here
  pixelrelay check --config pixelrelay.toml pre-flight a production config
  pixelrelay serve --config pixelrelay.toml
  pixelrelay serve --no-delivery ... / pixelrelay deliver ...   API and delivery apart
Each command has its own --help. The README is the manual."""
CONFIG_HELP = "TOML configuration file (default: $PIXELRELAY_CONFIG)"
OPS_CONFIG_HELP = (f"{CONFIG_HELP}; without either, the sandbox database in this folder")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("PIXELRELAY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The delivery log already records every request with TikTok's answer; httpx's own
    # per-request line would only repeat it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        code: int = args.run(args)
    except PixelrelayError as exc:  # config, flags, a taken port or database: one clear line
        print(f"pixelrelay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before a command's own stop handling was in place
        print("pixelrelay: interrupted", file=sys.stderr)
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelrelay", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pixelrelay {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the gateway: HTTP API, browser tag, webhooks, delivery, dashboard",
        description="Run the gateway. Without a config: sandbox mode, delivering to a "
                    "built-in TikTok emulator. One delivering process (serve or deliver) per "
                    "SQLite database: a second one exits with code 2 naming the first. "
                    "--no-delivery runs the API alone, beside a `pixelrelay deliver`.")
    serve.add_argument("--config", metavar="FILE",
                       help=f"{CONFIG_HELP}; without either, sandbox mode")
    serve.add_argument("--host", help="address to listen on (default: server.host, else "
                                      "127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port, "
                                                "else 8080)")
    serve.add_argument("--no-delivery", action="store_true",
                       help="API only: queue events for `pixelrelay deliver` processes on the "
                            "same database, send nothing (several may share a SQLite file)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="N processes on the one port (SO_REUSEPORT; needs a config): the "
                            "first delivers unless --no-delivery, the others are API only "
                            "(default 1)")
    # A worker of `serve --workers`: the socket it inherits and the supervisor it outlives not.
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--no-alerts", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    deliver = sub.add_parser(
        "deliver", help="run only the delivery workers (beside `serve --no-delivery`)",
        description="Deliver the queue of the configured database to its destinations, with "
                    "no API. On SQLite it owns the database like serve does (one per file); "
                    "on PostgreSQL several may run, sharing each destination's max_qps. "
                    "--port serves /healthz and /metrics for probes.")
    deliver.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    deliver.add_argument("--host", help="with --port: address to listen on (default: "
                                        "server.host, else 127.0.0.1)")
    deliver.add_argument("--port", type=int,
                         help="serve /healthz and /metrics on this port (default: no HTTP)")
    deliver.set_defaults(run=_deliver)

    emulator = sub.add_parser(
        "emulator", help="run a local TikTok Events API emulator (for tests and demos)",
        description="A local stand-in for TikTok's Events API: validates requests like TikTok "
                    "and keeps what it accepted (GET /events). Point a destination's api_url "
                    "at it.")
    emulator.add_argument("--host", default="127.0.0.1",
                          help="address to listen on (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=9000,
                          help="port to listen on (default 9000)")
    emulator.add_argument("--token", action="append", default=[],
                          help="accepted Access-Token (repeatable; none: any token)")
    emulator.add_argument("--pixel", action="append", default=[],
                          help="accepted pixel code (repeatable; none: any pixel)")
    emulator.set_defaults(run=_emulator)

    check = sub.add_parser(
        "check", help="pre-flight a config: every error and warning, settings shown masked",
        description="Validate a configuration before traffic, all in one run: every error "
                    "and warning with its key (unknown keys with the nearest known one, unset "
                    "${VAR}s, wrong values, the storage URL as serve reads it, event names "
                    "that are not the destination's, pixel codes, sources), then, unless "
                    "--offline, each api_url and the database probed (reachable, schema "
                    "version); the settings are shown with secrets masked. Exit 0 with "
                    "warnings only, 1 on any error, 2 when the file cannot be read or is not "
                    "TOML.")
    check.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    check.add_argument("--offline", action="store_true",
                       help="do not probe each destination's api_url or open the database")
    check.add_argument("--send-test", action="store_true",
                       help="send one ViewContent to each destination's test_event_code "
                            "(destinations without one are refused) and print TikTok's answer")
    check.add_argument("--test-event-code", metavar="CODE",
                       help="with --send-test: use this Test Events code (from Events Manager) "
                            "instead of the config's, to probe a production destination "
                            "without editing the config")
    check.add_argument("--destination", metavar="NAME",
                       help="with --send-test: only this destination")
    check.set_defaults(run=_check)

    migrate = sub.add_parser(
        "migrate", help="bring the database's schema up to this version",
        description="Apply the schema migrations the database lacks and print its version. "
                    "serve and deliver also migrate when they start; run this first when "
                    "several processes share a PostgreSQL database.")
    migrate.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    migrate.set_defaults(run=_migrate)

    pixel = sub.add_parser(
        "shopify-pixel", help="print the Shopify custom pixel for a browser source",
        description="Print the code to paste in Shopify admin (Settings > Customer events > "
                    "Add custom pixel): Shopify's customer events sent to this gateway with "
                    "the source's site key, consent from Shopify's Customer Privacy API, and "
                    "each destination type's Pixel (TikTok's, Meta's) inside it with the same "
                    "event_ids.")
    pixel.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    pixel.add_argument("--source", metavar="NAME", required=True,
                       help="the browser source whose site key the pixel sends with")
    pixel.add_argument("--url", metavar="PUBLIC_URL", required=True,
                       help="the gateway's public URL, as the shopper's browser reaches it")
    pixel.add_argument("--pixels", "--tiktok-pixel", dest="pixels",
                       action=argparse.BooleanOptionalAction, default=None,
                       help="load each destination type's Pixel (its first destination's "
                            "pixel id) inside the custom pixel (default: when there is a "
                            "destination)")
    pixel.set_defaults(run=_shopify_pixel)
    _ops_parsers(sub)
    return parser


def _ops_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    when = "ISO 8601 or relative (24h, 7d)"
    replay = sub.add_parser(
        "replay", help="re-queue a destination's dead (or all finished) deliveries with the "
                       "same event_id",
        description="After fixing the cause, send a destination's events again under the same "
                    "event_id: each payload rebuilt from the stored (hashed) event with the "
                    "destination's current config, attempts reset. Skipped and counted: events "
                    "past max_age_days, events the current filters or consent exclude, events "
                    "delivered more than 48 h ago (the platform would count them twice), events "
                    "already queued again. Works while serve runs on the same database.")
    replay.add_argument("--config", metavar="FILE", help=OPS_CONFIG_HELP)
    replay.add_argument("--destination", required=True, metavar="NAME",
                        help="the destination whose deliveries are sent again")
    replay.add_argument("--since", help=f"accepted at or after ({when})")
    replay.add_argument("--until", help=f"accepted before ({when})")
    replay.add_argument("--state", choices=("dead", "all"), default="dead",
                        help="dead (default), or all = dead, delivered, filtered, suppressed")
    replay.add_argument("--event", help="only this event name (incoming or TikTok)")
    replay.add_argument("--dry-run", action="store_true", help="count only; change nothing")
    replay.set_defaults(run=_replay)

    imp = sub.add_parser(
        "import", help="import events from a JSONL or CSV file",
        description="Read events from a JSONL file (one event object per line, as POST "
                    "/v1/events takes) or a CSV file (one event per row) and queue them "
                    "through the same ingest as the API: validated, hashed, consent applied, "
                    "deduplicated by event_id. Rejected lines are listed with their line, "
                    "field and reason; exit 1 if any line was rejected.")
    imp.add_argument("file", help="the JSONL (one event object per line) or CSV file")
    imp.add_argument("--config", metavar="FILE", help=OPS_CONFIG_HELP)
    imp.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name")
    imp.add_argument("--source", choices=("web", "app", "offline", "crm"),
                     help="event source for lines that name none (default: web, as the API)")
    imp.add_argument("--rejects", help="write every rejected line (line, field, reason) as CSV")
    imp.set_defaults(run=_import)

    report = sub.add_parser(
        "report", help="reports over the delivery data",
        description="Reports over the stored events and deliveries; `pixelrelay report gap` "
                    "compares an orders CSV with the purchase events delivered.")
    reports = report.add_subparsers(required=True, metavar="REPORT")
    gap = reports.add_parser(
        "gap", help="orders vs delivered purchase events",
        description="Each order of the CSV (order_id; created_at and value optional) against "
                    "the purchase events found by properties.order_id or the event_id "
                    "ord_<order_id>_complete_payment: matched, missing with the reason, and "
                    "extra delivered purchases without an order. Writes every row to --out; "
                    "exit 1 if any order is missing.")
    gap.add_argument("--orders", required=True, help="CSV with order_id[, created_at, value]")
    gap.add_argument("--config", metavar="FILE", help=OPS_CONFIG_HELP)
    gap.add_argument("--since", help=f"orders created at or after ({when})")
    gap.add_argument("--until", help=f"orders created before ({when})")
    gap.add_argument("--destination", metavar="NAME",
                     help="the destination to compare (required when several are configured)")
    gap.add_argument("--out", default="gap.csv", help="CSV written (default gap.csv)")
    gap.set_defaults(run=_gap)


def _settings(path: str | None) -> Settings | None:
    path = path or os.environ.get("PIXELRELAY_CONFIG")
    return load_settings(path) if path else None


def _ops_settings(path: str | None) -> Settings:
    """What serve would use: the config, else the sandbox (its database in this folder)."""
    return _settings(path) or sandbox_settings()


def _replay(args: argparse.Namespace) -> int:
    from pixelrelay.ops import replay

    return replay.main(_ops_settings(args.config), replay.ReplayOptions(
        destination=args.destination, since=args.since, until=args.until, state=args.state,
        event=args.event, dry_run=args.dry_run))


def _import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixelrelay.ops import importer

    return importer.main(_ops_settings(args.config), importer.ImportOptions(
        path=Path(args.file), format=args.format, source=args.source,
        rejects=Path(args.rejects) if args.rejects else None))


def _gap(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixelrelay.ops import gap

    return gap.main(_ops_settings(args.config), gap.GapOptions(
        orders=Path(args.orders), out=Path(args.out), since=args.since, until=args.until,
        destination=args.destination))


def _migrate(args: argparse.Namespace) -> int:
    settings = _ops_settings(args.config)
    print(f"schema at version {_migrate_once(settings)} ({_masked_url(settings.storage.url)})")
    return 0


def _migrate_once(settings: Settings) -> int:
    """Bring the schema up to date; the version it is at."""
    import asyncio

    from pixelrelay.ops.attach import attach

    async def run() -> int:
        store = await attach(settings)  # opening migrates
        try:
            return await store.schema_version()
        finally:
            await store.close()

    return asyncio.run(run())


def _masked_url(url: str) -> str:
    from pixelrelay.ops.preflight import mask_url

    return mask_url(url)


def _serve(args: argparse.Namespace) -> int:
    import socket

    from pixelrelay import serving, workers
    from pixelrelay.app import create_app

    settings = _settings(args.config)
    if settings is None and args.no_delivery:
        print("pixelrelay: --no-delivery needs a config: the sandbox delivers to its built-in "
              "emulator from its one serve", file=sys.stderr)
        return 2
    if not 1 <= args.workers <= workers.MAX_WORKERS:
        print(f"pixelrelay: --workers must be between 1 and {workers.MAX_WORKERS}",
              file=sys.stderr)
        return 2
    if settings is None and args.workers > 1:
        print("pixelrelay: --workers needs a config: the sandbox's built-in emulator lives in "
              "one process", file=sys.stderr)
        return 2
    server = settings.server if settings is not None else None
    host = args.host or (server.host if server else "127.0.0.1")
    port = args.port if args.port is not None else (server.port if server else 8080)
    if settings is not None and args.workers > 1:
        # The port first: a serve that cannot listen must start nothing (no store, no workers).
        socks = workers.bind_shared(host, port, args.workers)
        _migrate_once(settings)  # before the workers, which would otherwise race to do it
        return workers.supervise(args.config or os.environ["PIXELRELAY_CONFIG"], socks, host,
                                 delivery=not args.no_delivery)
    if args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)
        if args.supervisor_pid is not None:
            serving.exit_with(args.supervisor_pid)
    else:
        # The port first: a serve that cannot listen must start nothing (no store, no workers).
        sock = serving.bind(host, port)
    port = sock.getsockname()[1]  # the real one when 0 asked for any free port
    if settings is None:
        settings = sandbox_settings(host, port)
    else:
        settings = dataclasses.replace(settings, server=dataclasses.replace(
            settings.server, host=host, port=port))
    delivery = not args.no_delivery
    role = "" if delivery else (
        "; API only" if args.supervisor_pid else "; API only, `pixelrelay deliver` sends")
    sig = serving.run(create_app(settings, delivery=delivery, alerts=not args.no_alerts), sock,
                      on_started=lambda: _banner(settings, role))
    # A worker of `serve --workers` leaves the one line to its supervisor.
    return 0 if args.supervisor_pid else serving.stopped("serve", sig)


def _deliver(args: argparse.Namespace) -> int:
    from pixelrelay import serving
    from pixelrelay.app import Gateway, create_delivery_app
    from pixelrelay.clock import SystemClock
    from pixelrelay.store import open_store

    if args.host and args.port is None:
        print("pixelrelay: --host goes with --port", file=sys.stderr)
        return 2
    settings = _settings(args.config)
    if settings is None:
        print("pixelrelay: deliver needs a config: pass --config FILE or set PIXELRELAY_CONFIG "
              "(the sandbox runs as one `pixelrelay serve`)", file=sys.stderr)
        return 2
    storage = mask_url(settings.storage.url)
    names = ", ".join(d.name for d in settings.destinations)
    if args.port is None:
        gateway = Gateway(settings, open_store(settings.storage.url), SystemClock(), None)
        return serving.stopped("deliver", serving.run_until_signalled(
            gateway.start, gateway.stop, on_started=lambda: print(
                f"pixelrelay delivering to {names}  (storage: {storage}; no HTTP)",
                flush=True)))
    host = args.host or settings.server.host
    sock = serving.bind(host, args.port)  # before the store: a taken port starts nothing
    base = f"http://{host}:{sock.getsockname()[1]}"
    return serving.stopped("deliver", serving.run(
        create_delivery_app(settings), sock, on_started=lambda: print(
            f"pixelrelay delivering to {names}  (storage: {storage}; probes: {base}/healthz, "
            f"{base}/metrics)", flush=True)))


def _banner(settings: Settings, role: str) -> None:
    base = f"http://{settings.server.host}:{settings.server.port}"
    print(f"pixelrelay listening on {base}  (storage: {mask_url(settings.storage.url)}{role})",
          flush=True)
    if settings.sandbox:
        print(f"""
No config given: sandbox mode. Events go to the built-in TikTok emulator at {base}/_emulator.
Post an event:
  curl -s {base}/v1/events -H 'Authorization: Bearer {SANDBOX_SOURCE_KEY}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"event":"Purchase","user":{{"email":"you@example.com"}},\
"properties":{{"order_id":"1001","value":9.5,"currency":"EUR"}}}}'
Watch it arrive at the emulator:   curl -s {base}/_emulator/events
Follow its delivery:
  curl -s '{base}/v1/deliveries?event_id=ord_1001_complete_payment' \\
       -H 'Authorization: Bearer {SANDBOX_SOURCE_KEY}'
Dashboard: open {base}/ and sign in with the admin token {SANDBOX_SOURCE_KEY}
The emulators keep what they received in memory: after a restart /_emulator/events starts
empty, while the gateway remembers event ids for 48 h (a repeat answers "duplicates":1).
For production, write a config file (see README) and run: pixelrelay serve --config FILE
""", flush=True)


def _emulator(args: argparse.Namespace) -> int:
    from pixelrelay import serving
    from pixelrelay.emulator.app import accepting

    app = accepting(args.token, args.pixel)
    sock = serving.bind(args.host, args.port)
    base = f"http://{args.host}:{sock.getsockname()[1]}"
    return serving.stopped("emulator", serving.run(app, sock, on_started=lambda: print(
        f"TikTok Events API emulator on {base}/open_api/v1.3/event/track/  (accepted events: "
        "GET /events)", flush=True)))


def _shopify_pixel(args: argparse.Namespace) -> int:
    from pixelrelay.sources.shopify_pixel import custom_pixel

    settings = _settings(args.config)
    if settings is None:
        print("pixelrelay: no config: pass --config FILE or set PIXELRELAY_CONFIG",
              file=sys.stderr)
        return 2
    print(custom_pixel(settings, args.source, args.url, pixels=args.pixels), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    from pixelrelay.ops import check

    path = args.config or os.environ.get("PIXELRELAY_CONFIG")
    if not path:
        print("pixelrelay: no config: pass --config FILE or set PIXELRELAY_CONFIG",
              file=sys.stderr)
        return 2
    if (args.test_event_code or args.destination) and not args.send_test:
        print("pixelrelay: --test-event-code and --destination go with --send-test",
              file=sys.stderr)
        return 2
    settings, problems = read_config(path)  # raises (exit 2) only for a file it cannot read
    code = check.main(settings, check.CheckOptions(source=path, offline=args.offline),
                      config_errors=problems)
    if args.send_test and problems:
        print("pixelrelay: --send-test sent nothing: the config has errors", file=sys.stderr)
    elif args.send_test:
        from pixelrelay.ops import send_test

        code = max(code, send_test.main(settings, args.destination,
                                        test_event_code=args.test_event_code))
    return code


if __name__ == "__main__":
    sys.exit(main())
