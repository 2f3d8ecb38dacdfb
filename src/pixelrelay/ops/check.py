"""`pixelrelay check`: every config error, the pre-flight findings, probes of each api_url and
of the database (reachable, schema version), one report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from pixelrelay.config import Settings
from pixelrelay.errors import ConfigError, StoreUnavailable
from pixelrelay.ops import preflight
from pixelrelay.ops.preflight import Finding
from pixelrelay.store import probe

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class CheckOptions:
    source: str  # the config file, for the first line
    offline: bool = False  # skip the network probe
    probe_timeout_s: float = PROBE_TIMEOUT_S


async def unreachable(settings: Settings, timeout_s: float) -> list[Finding]:
    """An error for every api_url that gives no HTTP answer at all (any status is an answer:
    the probe carries no token, so TikTok refuses it, and that is enough)."""
    by_url: dict[str, list[str]] = {}
    for i, d in enumerate(settings.destinations):
        if d.api_url.startswith(("http://", "https://")):  # else a config error says so
            by_url.setdefault(d.api_url, []).append(f"destinations[{i}].api_url")
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s),
                                 follow_redirects=False) as client:
        errors = await asyncio.gather(*(_probe(client, url, timeout_s) for url in by_url))
    return [Finding("error", path, f"{url} is unreachable: {error} (--offline skips this probe)")
            for (url, paths), error in zip(by_url.items(), errors, strict=True) if error
            for path in paths]


async def _probe(client: httpx.AsyncClient, url: str, timeout_s: float) -> str:
    try:
        await client.get(url)
    except httpx.TimeoutException:
        return f"no answer within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


async def storage(settings: Settings, timeout_s: float) -> tuple[list[Finding], str]:
    """The database as serve would open it, read only: findings, and a line saying what was
    found ("" when an error says it)."""
    url = preflight.mask_url(settings.storage.url)
    try:
        schema = await probe.schema(settings.storage.url, timeout_s)
    except (StoreUnavailable, ConfigError) as exc:
        reason = exc.reason if isinstance(exc, ConfigError) else str(exc)
        return [Finding("error", "storage.url",
                        f"{url}: {reason} (--offline skips this probe)")], ""
    if schema.fresh:
        return [], (f"storage {url}: no pixelrelay schema yet; serve creates it (version "
                    f"{schema.latest})")
    assert schema.version is not None
    line = f"storage {url}: reachable, schema version {schema.version}"
    if schema.version > schema.latest:
        return [Finding("error", "storage.url",
                        f"schema version {schema.version} is newer than this pixelrelay's "
                        f"({schema.latest}): a later pixelrelay migrated it; run that one")], line
    if schema.version < schema.latest:
        return [Finding("warning", "storage.url",
                        f"schema version {schema.version}: serve and deliver migrate it to "
                        f"{schema.latest} when they start (run `pixelrelay migrate` first when "
                        "several processes share it)")], line
    return [], line + " (current)"


async def probes(settings: Settings, timeout_s: float,
                 skip: frozenset[str]) -> tuple[list[Finding], list[str]]:
    """The network and database probes at once, each within `timeout_s`; none for a key whose
    value is already wrong (`skip`)."""
    if "storage.url" in skip:
        return await unreachable(settings, timeout_s), []
    (found, line), urls = await asyncio.gather(storage(settings, timeout_s),
                                               unreachable(settings, timeout_s))
    return found + urls, [line] if line else []


def main(settings: Settings, options: CheckOptions, out: Callable[[str], None] = print,
         config_errors: Sequence[ConfigError] = ()) -> int:
    """Print every config error, the settings (secrets masked) when they read cleanly, and
    every finding; 1 when there is an error, 0 otherwise."""
    wrong = frozenset(e.key for e in config_errors)
    later = preflight.findings(settings)
    notes: list[str] = []
    if not options.offline:
        probed, notes = asyncio.run(probes(settings, options.probe_timeout_s, wrong))
        later += probed
    # A value already reported wrong was read as its default: nothing more to say about it.
    found = [Finding("error", e.key, e.reason) for e in config_errors] + [
        f for f in later if not _within(f.path, wrong)]
    out(f"config {options.source}: {len(settings.sources)} source(s), "
        f"{len(settings.destinations)} destination(s), storage "
        f"{preflight.mask_url(settings.storage.url)}")
    if not config_errors:  # with errors, defaults would stand in for the wrong values
        for line in preflight.show(settings):
            out(line)
    for line in notes:
        out(line)
    errors = [f for f in found if f.level == "error"]
    warnings = [f for f in found if f.level == "warning"]
    for f in errors + warnings:
        out(f"{f.level}: {f.path}: {f.message}")
    if errors:
        out(f"check failed: {len(errors)} error(s), {len(warnings)} warning(s)")
        return 1
    out(f"check OK: {len(warnings)} warning(s)")
    return 0


def _within(path: str, keys: frozenset[str]) -> bool:
    """Whether `path` is one of `keys` or inside one (sources[0].name inside sources)."""
    return any(path == k or path.startswith((f"{k}.", f"{k}[")) for k in keys)
