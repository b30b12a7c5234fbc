"""The OpenAPI 3.1 document, generated from the route table and its msgspec structs."""

import re
from typing import Any

import msgspec

from api.errors import ErrorBody
from api.routing import Access, Route

_PATH_PARAM = re.compile(r"{(\w+)}")


def build_spec(routes: list[Route], title: str = "larkfleet", version: str = "0.1.0") -> dict:
    structs = {r.request for r in routes if r.request} | {r.response for r in routes if r.response}
    ordered = sorted(structs, key=lambda t: getattr(t, "__name__", str(t)))
    refs, components = msgspec.json.schema_components(
        [*ordered, ErrorBody], ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip([*ordered, ErrorBody], refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route, schema_of: dict[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "responses": {},
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "integer"}}
        for name in route.query
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.access is not Access.PUBLIC:
        operation["security"] = [{"bearer": []}]
    if route.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of[route.request]}},
        }
    for status in route.statuses:
        operation["responses"][str(status)] = _response(route, status, schema_of)
    return operation


def _response(route: Route, status: int, schema_of: dict[Any, Any]) -> dict[str, Any]:
    if status >= 400:
        content = {"application/json": {"schema": schema_of[ErrorBody]}}
        return {"description": "error", "content": content}
    if route.response is None:
        return {"description": "ok", "content": {route.content_type: {"schema": {}}}}
    content = {"application/json": {"schema": schema_of[route.response]}}
    return {"description": "ok", "content": content}
