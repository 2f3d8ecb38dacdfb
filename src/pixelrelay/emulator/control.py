"""The loopback control endpoints every emulator has (its faults, as JSON), in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response


class Faults(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def update(self, changes: dict[str, Any]) -> None: ...


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


async def faults_answer(request: Request, faults: Faults) -> Response:
    """GET: the faults in force; POST: a partial JSON update of them, then the same."""
    if request.method == "POST":
        raw = await request.body()
        try:
            changes = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return json_response({"error": "body: Invalid JSON"}, 400)
        if type(changes) is not dict:
            return json_response({"error": "body: must be a JSON object"}, 400)
        try:
            faults.update(changes)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
    return json_response(faults.to_dict())


def update_fields(target: Any, changes: dict[str, Any],
                  coerce: Callable[[str, Any], Any]) -> None:
    """Apply a partial JSON update to a faults dataclass, all or nothing; ValueError names the
    bad field (an unknown one, or a value `coerce` refuses)."""
    known = {f.name for f in fields(target)}
    staged: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in known:
            raise ValueError(f"{key}: unknown fault")
        staged[key] = coerce(key, value)
    for key, value in staged.items():
        setattr(target, key, value)


NOT_SHARED = object()  # coerce_shared: the key is the emulator's own to check


def coerce_shared(key: str, value: Any, rates: frozenset[str] | tuple[str, ...]) -> Any:
    """A JSON value for a fault every emulator has (its error rates, latency_ms, hang,
    reject_event), checked; NOT_SHARED for any other key."""
    # bool is an int subclass; "true" for a rate is a caller mistake, not 1.0.
    if key in rates or key == "latency_ms":
        if type(value) not in (int, float):
            raise ValueError(f"{key}: must be a number")
        number = float(value)
        if key in rates and not 0.0 <= number <= 1.0:
            raise ValueError(f"{key}: must be between 0 and 1")
        if number < 0:
            raise ValueError(f"{key}: must not be negative")
        return number
    if key == "hang":
        if type(value) is not bool:
            raise ValueError(f"{key}: must be true or false")
        return value
    if key == "reject_event":
        if value is not None and type(value) is not str:
            raise ValueError(f"{key}: must be a string or null")
        return value
    return NOT_SHARED
