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


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(value),
                        content_type="application/json")
