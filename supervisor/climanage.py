"""The CLI's management commands: bots show|edit|delete, users, tokens, send, dead-letters.

One command per API operation, each a thin call through ApiClient: a short
line or table for people, the API's JSON body with `--json`. Secrets are read
from the environment when set (LARKFLEET_APP_SECRET, ...), so they need not
appear in the shell history or `ps`.
"""

import argparse
import json
import os
from typing import Any
from urllib.parse import quote

from supervisor.apiclient import ApiClient, ApiError, handler_json, table

SECRET_ENV = {
    "app_secret": "LARKFLEET_APP_SECRET",
    "verification_token": "LARKFLEET_VERIFICATION_TOKEN",
    "encrypt_key": "LARKFLEET_ENCRYPT_KEY",
}
"""Bot secret flag -> the environment variable that, when set, wins over the flag."""


def bot_path(bot_id: str, *rest: str) -> str:
    return "/".join(["/api/feishu/bots", quote(bot_id, safe=""), *rest])


def _print(args: argparse.Namespace, result: Any, line: str) -> None:
    print(json.dumps(result, indent=2) if args.json else line)


def secret(args: argparse.Namespace, name: str) -> str | None:
    """The secret from its environment variable, else its flag, else None (unchanged)."""
    return os.environ.get(SECRET_ENV[name]) or getattr(args, name)


def bot_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The PATCH body: only what the flags name (secrets from the environment too)."""
    body: dict[str, Any] = {}
    for flag, field in (("name", "name"), ("app_id", "appId"), ("domain", "domain")):
        if getattr(args, flag) is not None:
            body[field] = getattr(args, flag)
    for name, field in (("app_secret", "appSecret"), ("verification_token", "verificationToken"),
                        ("encrypt_key", "encryptKey")):
        value = secret(args, name)
        if value is not None:
            body[field] = value
    if args.mode is not None:
        body["useWebSocket"] = args.mode == "websocket"
    if args.handler is not None:
        body["handler"] = handler_json(args.handler)
    return body


def bots_show(client: ApiClient, args: argparse.Namespace) -> None:
    bot = client.json("GET", bot_path(args.bot_id))
    lines = [f"{key}: {json.dumps(value) if isinstance(value, dict) else value}"
             for key, value in bot.items()]
    _print(args, bot, "\n".join(lines))


def bots_edit(client: ApiClient, args: argparse.Namespace) -> None:
    body = bot_changes(args)
    if not body:
        raise ApiError("nothing to change: pass at least one option (see --help)")
    bot = client.json("PATCH", bot_path(args.bot_id), body)
    _print(args, bot, f"{bot['id']}: changed {', '.join(sorted(body))}")


def bots_delete(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("DELETE", bot_path(args.bot_id))
    _print(args, result, f"{args.bot_id}: deleted (with its spool and log)")


def users_list(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("GET", "/api/users")
    _print(args, result, table(result["users"], ("id", "name", "isAdmin", "createdAt")))


def users_add(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("POST", "/api/users", {"name": args.name})
    _print(args, result, f"created {result['id']}; its token (shown once): {result['token']}")


def users_delete(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("DELETE", f"/api/users/{quote(args.user_id, safe='')}")
    _print(args, result, f"{args.user_id}: deleted")


def tokens_add(client: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {}
    if args.scope:
        body["scope"] = args.scope
    if args.expires_at:
        body["expiresAt"] = args.expires_at
    path = f"/api/users/{quote(args.user_id, safe='')}/tokens"
    result = client.json("POST", path, body or None)
    _print(args, result, f"token for {args.user_id} (shown once): {result['token']}")


def tokens_list(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("GET", f"/api/users/{quote(args.user_id, safe='')}/tokens")
    columns = ("id", "scope", "kind", "createdAt", "expiresAt", "lastUsedAt")
    _print(args, result, table(result["tokens"], columns))


def tokens_revoke(client: ApiClient, args: argparse.Namespace) -> None:
    """One token by its id, or every token of the user (admin) without one."""
    path = f"/api/users/{quote(args.user_id, safe='')}/tokens"
    if args.token_id:
        result = client.json("DELETE", f"{path}/{quote(args.token_id, safe='')}")
        _print(args, result, f"{args.user_id}: token {args.token_id} revoked")
        return
    result = client.json("DELETE", path)
    _print(args, result, f"{args.user_id}: {result['revoked']} token(s) revoked")


def audit(client: ApiClient, args: argparse.Namespace) -> None:
    query = f"?limit={args.limit}" + (f"&before={args.before}" if args.before else "")
    result = client.json("GET", f"/api/audit{query}")
    columns = ("id", "at", "actor", "action", "target", "outcome")
    _print(args, result, table(result["entries"], columns))


def send(client: ApiClient, args: argparse.Namespace) -> None:
    body = {"receiveId": args.to, "receiveIdType": args.to_type, "text": args.text}
    if args.uuid:
        body["uuid"] = args.uuid
    result = client.json("POST", bot_path(args.bot_id, "messages"), body)
    _print(args, result, f"sent {result.get('messageId')}")


def dead_letters_list(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("GET", bot_path(args.bot_id, "dead-letters"))
    columns = ("eventId", "eventType", "chatId", "attempts", "updatedAt", "lastError")
    _print(args, result, table(result["deadLetters"], columns))


def dead_letters_retry(client: ApiClient, args: argparse.Namespace) -> None:
    path = bot_path(args.bot_id, "dead-letters", quote(args.event_id, safe=""), "retry")
    result = client.json("POST", path)
    _print(args, result, f"{args.event_id}: queued again")


def add_bot_fields(parser: argparse.ArgumentParser) -> None:
    """The editable fields of a bot, for `bots edit` (every one optional)."""
    parser.add_argument("--name")
    parser.add_argument("--app-id")
    parser.add_argument("--app-secret", help="or LARKFLEET_APP_SECRET (safer: not in ps)")
    parser.add_argument("--verification-token", help="webhook mode; or "
                        "LARKFLEET_VERIFICATION_TOKEN")
    parser.add_argument("--encrypt-key", help="webhook mode; or LARKFLEET_ENCRYPT_KEY")
    parser.add_argument("--domain", help="feishu, lark, or a base URL")
    parser.add_argument("--mode", choices=("websocket", "webhook"))
    parser.add_argument("--handler", help='JSON, e.g. \'{"kind": "python", "target": '
                        '"mybot.replies:answer"}\'')
