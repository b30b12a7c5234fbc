"""One error shape for every failure: `{success: false, error: {code, message}}`.

Handlers raise ApiError (or let aiohttp raise its HTTP exceptions: 404 for
unknown paths, 405, 413 for bodies over the limit); the middleware turns
each into JSON with the right status. Anything unexpected is logged with its
traceback and answered 500 without it.
"""

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import msgspec
from aiohttp import web

from store import NotFound

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "internal_error",
    502: "bad_gateway",
    503: "not_ready",
    504: "timeout",
}


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True):
    """What every failed request answers."""

    success: bool = False
    error: ErrorDetail


class ApiError(Exception):
    """A failure the client should see: status, a stable code and a human message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
        self.message = message


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def error_response(status: int, message: str, code: str | None = None) -> web.Response:
    error = ApiError(status, message, code)
    body = msgspec.json.encode(ErrorBody(error=ErrorDetail(error.code, error.message)))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.message, error.code)
    except NotFound as error:
        return error_response(404, f"bot {error.args[0]} not found")
    except TimeoutError as error:
        logger.warning("%s %s timed out: %s", request.method, request.path, error)
        return error_response(504, str(error) or "timed out")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = error_response(error.status, _http_message(request, error))
        if error.status == 405 and "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error; see the supervisor log")


def _http_message(request: web.Request, error: web.HTTPException) -> str:
    if error.status == 404:
        return f"no route for {request.path}"
    if error.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if error.status == 413:
        return "request body is larger than 1 MiB"
    return error.reason
