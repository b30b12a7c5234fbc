"""Reading request bodies into structs and writing structs as responses."""

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from api.errors import ApiError
from shared.jsonbody import decode_json

T = TypeVar("T")

MAX_BODY = 1024 * 1024
"""Bodies over 1 MiB are refused with 413 (aiohttp's client_max_size)."""


async def decode_body(request: web.Request, kind: type[T]) -> T:
    """The body as `kind`, or a 400 whose message names the offending field ($.appId...)."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "request body is empty; expected a JSON object", "invalid_json")
    try:
        return decode_json(raw, kind)
    except msgspec.ValidationError as error:
        raise ApiError(400, f"invalid request: {error}", "invalid_field") from error
    except msgspec.DecodeError as error:
        raise ApiError(400, f"malformed JSON: {error}", "invalid_json") from error


SQL_INTEGER_MAX = 2**63 - 1
"""The largest integer SQLite and PostgreSQL's bigint hold: a larger query value is a 400
before it reaches the store (sqlite3 raises OverflowError on it)."""


def query_integer(request: web.Request, name: str, default: int | None, lowest: int,
                  highest: int = SQL_INTEGER_MAX) -> int | None:
    """The query parameter `name` as an integer in lowest..highest (inclusive), or
    `default` when absent; raises ApiError 400 `invalid_field` naming `$.name` otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lowest <= value <= highest:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ApiError(400, f"invalid request: expected an integer from {lowest} to {highest},"
                       f" got {shown!r} - at `$.{name}`", "invalid_field")
    return value


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(value),
                        content_type="application/json")
