"""Users and their tokens (admin only): create, list, delete, issue and revoke tokens."""

from aiohttp import web

from api.auth import caller
from api.body import decode_body, json_response
from api.errors import ApiError, not_found
from api.keys import REGISTRY
from api.routing import Access, Route
from api.schemas import CreateUser, TokensRevoked, UserDeleted, UserList, UserToken, user_view
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


async def issue_token(request: web.Request) -> web.Response:
    registry: Store = request.app[REGISTRY]
    user = registry.get_user(_user_id(request))
    return json_response(UserToken(user.id, user.name, registry.issue_token(user.id)), 201)


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
    Route("POST", "/api/users/{id}/tokens", issue_token, "Issue another token for a user",
          None, UserToken, (201, 401, 403, 404), Access.ADMIN),
    Route("DELETE", "/api/users/{id}/tokens", revoke_tokens, "Revoke every token of a user",
          None, TokensRevoked, (200, 401, 403, 404, 409), Access.ADMIN),
]
