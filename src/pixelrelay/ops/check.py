"""`pixelrelay check`: the pre-flight findings, a reachability probe of each api_url, a report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pixelrelay.config import Settings
from pixelrelay.ops import preflight
from pixelrelay.ops.preflight import Finding

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


def main(settings: Settings, options: CheckOptions, out: Callable[[str], None] = print) -> int:
    """Print the settings (secrets masked) and every finding; 1 when there is an error."""
    found = preflight.findings(settings)
    if not options.offline:
        found += asyncio.run(unreachable(settings, options.probe_timeout_s))
    out(f"config {options.source}: {len(settings.sources)} source(s), "
        f"{len(settings.destinations)} destination(s), storage "
        f"{preflight.mask_url(settings.storage.url)}")
    for line in preflight.show(settings):
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
