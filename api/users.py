"""Users and their tokens: create, list, delete (admin); issue, list and revoke tokens.

An admin manages everyone's tokens; a user lists and revokes its own and may
issue itself viewer tokens (read-only, for dashboards and monitoring).
"""

import time
from datetime import UTC

from aiohttp import web

from api.auth import caller
from api.body import decode_body, json_response
from api.errors import ApiError, not_found
from api.keys import REGISTRY
from api.routing import Access, Route
from api.schemas import (
    CreateUser,
    IssueToken,
    TokenIssued,
    TokenList,
    TokenRevoked,
    TokensRevoked,
    UserDeleted,
    UserList,
    UserToken,
    token_view,
    user_view,
)
from shared.clocks import iso
from store import Conflict, NotFound, Store


def _user_id(request: web.Request) -> str:
    user_id = request.match_info["id"]
    try:
        request.app[REGISTRY].get_user(user_id)
    except NotFound as error:
        raise not_found(f"user {user_id}") from error
    return user_id


async def create_user(request: web.Request) -> web.Response:
    """The token is in this response only; the registry keeps just its hash."""
    body = await decode_body(request, CreateUser)
    user, token = request.app[REGISTRY].create_user(body.name)
    return json_response(UserToken(user.id, user.name, token), 201)


async def list_users(request: web.Request) -> web.Response:
    users = request.app[REGISTRY].list_users()
    return json_response(UserList([user_view(u) for u in users]))


async def delete_user(request: web.Request) -> web.Response:
    """Refused (409) while the user owns bots, or for the last admin."""
    user_id = _user_id(request)
    try:
        request.app[REGISTRY].delete_user(user_id)
    except Conflict as error:
        raise ApiError(409, str(error)) from error
    return json_response(UserDeleted(user_id=user_id))


def _own_or_admin(request: web.Request) -> str:
    """The {id} user if the caller is an admin or that user; 403 otherwise, 404 if missing."""
    user_id = _user_id(request)
    me = caller(request)
    if not me.is_admin and me.id != user_id:
        raise ApiError(403, "admin token required for another user's tokens")
    return user_id


async def issue_token(request: web.Request) -> web.Response:
    """201 {id, token, scope, expiresAt}: the token is shown here only."""
    registry: Store = request.app[REGISTRY]
    user_id = _own_or_admin(request)
    body = (await decode_body(request, IssueToken) if (await request.read()).strip()
            else IssueToken())
    if not caller(request).is_admin and body.scope != "viewer":
        raise ApiError(403, "without an admin token you may issue yourself viewer tokens only"
                            " - at `$.scope`")
    expires = None
    if body.expires_at is not None:
        at = body.expires_at if body.expires_at.tzinfo else body.expires_at.replace(tzinfo=UTC)
        expires = at.timestamp()
        if expires <= time.time():
            raise ApiError(400, "invalid request: expiresAt is in the past - at `$.expiresAt`",
                           "invalid_field")
    try:
        record, token = registry.issue_scoped_token(user_id, body.scope, expires)
    except ValueError as error:
        raise ApiError(400, f"invalid request: {error} - at `$.scope`", "invalid_field") from None
    user = registry.get_user(user_id)
    issued = TokenIssued(id=record.id, user_id=user_id, name=user.name, token=token,
                         scope=record.scope, expires_at=iso(record.expires))
    return json_response(issued, 201)


async def list_tokens(request: web.Request) -> web.Response:
    user_id = _own_or_admin(request)
    records = request.app[REGISTRY].list_tokens(user_id)
    return json_response(TokenList(user_id=user_id, tokens=[token_view(r) for r in records]))


async def revoke_token(request: web.Request) -> web.Response:
    user_id = _own_or_admin(request)
    token_id = request.match_info["tokenId"]
    if not request.app[REGISTRY].revoke_token_id(user_id, token_id):
        raise not_found(f"token {token_id}")
    return json_response(TokenRevoked(user_id=user_id, token_id=token_id))


async def revoke_tokens(request: web.Request) -> web.Response:
    """Revokes every token of the user; an admin cannot lock itself out this way."""
    user_id = _user_id(request)
    if user_id == caller(request).id:
        raise ApiError(409, "revoking your own tokens would lock you out; use another admin")
    revoked = request.app[REGISTRY].revoke_tokens(user_id)
    return json_response(TokensRevoked(user_id=user_id, revoked=revoked))


ROUTES = [
    Route("POST", "/api/users", create_user, "Create a user; its token is shown once",
          CreateUser, UserToken, (201, 400, 401, 403), Access.ADMIN),
    Route("GET", "/api/users", list_users, "Every user (no tokens)",
          None, UserList, (200, 401, 403), Access.ADMIN),
    Route("DELETE", "/api/users/{id}", delete_user, "Delete a user that owns no bots",
          None, UserDeleted, (200, 401, 403, 404, 409), Access.ADMIN),
    Route("POST", "/api/users/{id}/tokens", issue_token,
          "Issue a token (scope owner or viewer, optional expiry); users: viewer tokens for"
          " themselves", IssueToken, TokenIssued, (201, 400, 401, 403, 404)),
    Route("GET", "/api/users/{id}/tokens", list_tokens,
          "A user's tokens (never the tokens themselves): admin, or the user itself",
          None, TokenList, (200, 401, 403, 404)),
    Route("DELETE", "/api/users/{id}/tokens/{tokenId}", revoke_token,
          "Revoke one token: admin, or the user itself",
          None, TokenRevoked, (200, 401, 403, 404)),
    Route("DELETE", "/api/users/{id}/tokens", revoke_tokens, "Revoke every token of a user",
          None, TokensRevoked, (200, 401, 403, 404, 409), Access.ADMIN),
]
