"""The route table: each route group lists its routes once, with what they take and give.

The app registers handlers from these lists and /api/openapi.json is built
from the same lists, so the schema cannot drift from what is served.
"""

from dataclasses import dataclass
from enum import StrEnum

from api.errors import Handler


class Access(StrEnum):
    PUBLIC = "public"
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    request: type | None = None
    response: type | None = None
    statuses: tuple[int, ...] = (200,)
    access: Access = Access.USER
    content_type: str = "application/json"
    query: tuple[str, ...] = ()
