"""Reading a Graph API POST as Meta does: parameters from the query string and a JSON, urlencoded
or multipart body, and the access token from the query, a form field or a Bearer header."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

JSON: Final = "json"
FORM: Final = "form"
MULTIPART: Final = "multipart"
NONE: Final = "none"  # no body: every parameter came in the query string


@dataclass(slots=True)
class Params:
    """The request's parameters, body over query string (Graph merges both)."""

    values: dict[str, Any] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    encoding: str = NONE
    error: str | None = None  # why the body could not be read, naming the part at fault


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def read_params(content_type: str | None, raw: bytes, query: str) -> Params:
    """Merge the query string and the body; never raises, a bad body sets `error`."""
    in_query = dict(parse_qsl(query, keep_blank_values=True))
    out = Params(values=dict(in_query), query=in_query)
    media = media_type(content_type)
    if not raw.strip():
        return out
    is_json = media.startswith("application/") and media.endswith(("/json", "+json"))
    if is_json:
        out.encoding = JSON
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out.error = "body: Invalid JSON"
            return out
        if type(body) is not dict:
            out.error = "body: must be a JSON object"
            return out
        out.values.update(body)
    elif media == "application/x-www-form-urlencoded":
        out.encoding = FORM
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            out.error = "body: not UTF-8"
            return out
        out.values.update(parse_qsl(text, keep_blank_values=True))
    elif media == "multipart/form-data":
        out.encoding = MULTIPART
        fields, error = _multipart(content_type or "", raw)
        out.values.update(fields)
        out.error = error
    else:
        out.error = (
            "Content-Type: must be application/json, application/x-www-form-urlencoded "
            "or multipart/form-data"
        )
    return out


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], str | None]:
    # The stdlib MIME parser is enough for curl's `-F name=value` text fields.
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        return {}, "body: not a multipart/form-data body (boundary missing?)"
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return fields, "body: a multipart part has no name"
        payload = part.get_payload(decode=True)
        try:
            fields[name] = payload.decode("utf-8") if isinstance(payload, bytes) else ""
        except UnicodeDecodeError:
            return fields, f"{name}: not UTF-8"
    return fields, None


def find_token(params: Params, authorization: str | None) -> tuple[str | None, str | None]:
    """(token, where it was found): `query`, `body` (a form or JSON field) or `bearer`."""
    token = params.query.get("access_token")
    if token:
        return token, "query"
    token = params.values.get("access_token")
    if type(token) is str and token:
        return token, "body"
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip(), "bearer"
    return None, None


def decode_data(value: Any) -> tuple[list[Any] | None, str | None]:
    """`data` as a list: an array in JSON, a JSON-encoded array in a form (either way)."""
    if type(value) is str:
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None, "param data must be an array (a JSON-encoded array in a form)."
    if type(value) is not list:
        return None, "param data must be an array."
    return value, None


def decode_event(item: Any) -> Any:
    """One data[] item: an object, or a JSON-encoded object as Meta's SDK sends each event."""
    if type(item) is str:
        try:
            return orjson.loads(item)
        except orjson.JSONDecodeError:
            return item
    return item
