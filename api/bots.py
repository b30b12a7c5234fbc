"""Bots CRUD: POST/GET /api/feishu/bots and GET/PATCH/DELETE /api/feishu/bots/{id}."""

import logging

import msgspec
from aiohttp import web

from api.auth import caller, owned_bot, owned_bot_id, owner_scope
from api.body import decode_body, json_response
from api.errors import ApiError
from api.keys import FLEET, PATHS, REGISTRY
from api.policy import check_bot
from api.routing import Route
from api.schemas import BotDeleted, BotList, BotView, CreateBot, PatchBot, bot_view
from shared.botconfig import SECRET_HANDLER_FIELDS, BotConfig, HandlerSpec, resolve_domain
from store import Conflict

logger = logging.getLogger(__name__)


def _check_domain(domain: str) -> None:
    try:
        resolve_domain(domain)
    except ValueError as error:
        raise ApiError(400, f"invalid request: {error} - at `$.domain`", "invalid_field") from error


def keep_handler_secrets(current: HandlerSpec, new: HandlerSpec) -> HandlerSpec:
    """Secrets are write-only: a handler of the same kind sent without one keeps the stored one.

    Clients (the dashboard, `larkfleet bots edit`) never see the secret, so
    they cannot send it back; an empty secret field means "unchanged".
    """
    if type(current) is not type(new):
        return new
    kept = {name: getattr(current, name)
            for name in SECRET_HANDLER_FIELDS.get(type(new), ())
            if not getattr(new, name)}
    return msgspec.structs.replace(new, **kept) if kept else new


def _check_shared(request: web.Request, shared: bool) -> None:
    """Only an admin lets several bots share one appId (they would split its events)."""
    if shared and not caller(request).is_admin:
        raise ApiError(403, "only an admin marks a bot shared - at `$.shared`")


async def create_bot(request: web.Request) -> web.Response:
    body = await decode_body(request, CreateBot)
    _check_domain(body.domain)
    _check_shared(request, body.shared)
    config = BotConfig(
        id="",
        name=body.name,
        app_id=body.app_id,
        app_secret=body.app_secret,
        verification_token=body.verification_token,
        encrypt_key=body.encrypt_key,
        use_websocket=body.use_websocket,
        domain=body.domain,
        handler=body.handler,
        options=body.options,
    )
    user = caller(request)
    await check_bot(request, config, user.is_admin)
    try:
        record = request.app[REGISTRY].create_bot(user.id, config)
    except Conflict as error:
        raise ApiError(409, str(error)) from error
    if body.shared:
        record = request.app[REGISTRY].set_shared(record.config.id, True)
    await request.app[FLEET].bot_added(record.config.id)
    return json_response(bot_view(record), 201)


async def list_bots(request: web.Request) -> web.Response:
    records = request.app[REGISTRY].list_bots(owner_scope(request))
    return json_response(BotList([bot_view(r) for r in records]))


async def get_bot(request: web.Request) -> web.Response:
    return json_response(bot_view(owned_bot(request)))


async def patch_bot(request: web.Request) -> web.Response:
    record = owned_bot(request)
    body = await decode_body(request, PatchBot)
    changes = {
        name: value
        for name in PatchBot.__struct_fields__
        if (value := getattr(body, name)) is not msgspec.UNSET
    }
    if "domain" in changes:
        _check_domain(changes["domain"])
    if "handler" in changes:
        changes["handler"] = keep_handler_secrets(record.config.handler, changes["handler"])
    registry = request.app[REGISTRY]
    if "shared" in changes:
        shared = changes.pop("shared")
        if shared != record.shared:
            _check_shared(request, True)
            record = registry.set_shared(record.config.id, shared)
    if not changes:
        return json_response(bot_view(record))
    trusted = registry.get_user(record.owner).is_admin
    merged = msgspec.structs.replace(record.config, **changes)
    await check_bot(request, merged, trusted, handler_changed="handler" in changes)
    try:
        updated = request.app[REGISTRY].update_bot(record.config.id, record.owner, **changes)
    except Conflict as error:
        raise ApiError(409, str(error)) from error
    await request.app[FLEET].bot_changed(updated.config.id)
    return json_response(bot_view(updated))


async def delete_bot(request: web.Request) -> web.Response:
    """Stops the worker (closing the platform connection); the fleet deletes the bot, then
    its files go: the spool (events, dead letters, chat history) and the log.
    """
    bot_id = owned_bot_id(request)
    await request.app[FLEET].bot_removed(bot_id)
    request.app[PATHS].remove_bot_files(bot_id)
    return json_response(BotDeleted(bot_id=bot_id))


ROUTES = [
    Route("POST", "/api/feishu/bots", create_bot, "Create a bot owned by the caller",
          CreateBot, BotView, (201, 400, 401, 409, 413)),
    Route("GET", "/api/feishu/bots", list_bots, "The caller's bots (admin: all)",
          None, BotList, (200, 401)),
    Route("GET", "/api/feishu/bots/{id}", get_bot, "One bot (never its secrets)",
          None, BotView, (200, 401, 404)),
    Route("PATCH", "/api/feishu/bots/{id}", patch_bot,
          "Change a bot; a running worker restarts with the new config",
          PatchBot, BotView, (200, 400, 401, 404, 409, 413)),
    Route("DELETE", "/api/feishu/bots/{id}", delete_bot, "Disconnect and delete a bot",
          None, BotDeleted, (200, 401, 404, 504)),
]
