"""The CLI's thin client of the HTTP API: `larkfleet status|connect|disconnect|logs|bots`.

It reads the token from LARKFLEET_TOKEN, else <data-dir>/admin.token, and
prints a table for people or JSON (`--json`) for scripts. It imports no SDK,
so it starts in milliseconds.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from shared.paths import DataPaths
from shared.ports import PORT_EXPECTED, SERVICE_URL_EXPECTED, is_service_url

STATUS_COLUMNS = ("botId", "state", "pid", "restarts", "pending", "deadLetters", "error")


class ApiError(Exception):
    pass


class SettingError(ApiError):
    """A bad flag or variable (the message names it): exit 2, like a usage error."""


def checked_url(url: str, source: str) -> str:
    """`url` when it is a service URL; raises SettingError naming `source` (the flag or
    variable it came from) otherwise, instead of a traceback from urllib."""
    if is_service_url(url):
        return url
    if source == "LARKFLEET_PORT":
        raise SettingError(f"{source}: expected {PORT_EXPECTED},"
                           f" got {os.environ.get(source)!r}")
    raise SettingError(f"{source}: expected {SERVICE_URL_EXPECTED}, got {url!r}")


def handler_json(text: str) -> dict[str, Any]:
    """The --handler flag: a JSON object such as '{"kind": "echo"}'; raises SettingError."""
    try:
        handler = json.loads(text)
    except ValueError as error:
        raise SettingError(f"--handler is not JSON: {error}") from error
    if not isinstance(handler, dict):
        raise SettingError('--handler must be a JSON object, e.g. \'{"kind": "echo"}\'')
    return handler


def url_source(url: str) -> str:
    """Which setting gave the client its URL: the flag, LARKFLEET_URL or LARKFLEET_PORT."""
    from supervisor.cli import default_url

    if url != default_url():
        return "--url"
    return "LARKFLEET_URL" if "LARKFLEET_URL" in os.environ else "LARKFLEET_PORT"


class ApiClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ApiClient":
        """Raises SettingError for a bad URL, ApiError when there is no token."""
        url = checked_url(args.url, url_source(args.url))
        token = os.environ.get("LARKFLEET_TOKEN")
        if not token:
            token_file = DataPaths(Path(args.data_dir)).admin_token
            try:
                token = token_file.read_text().strip()
            except OSError as error:
                message = f"no LARKFLEET_TOKEN and cannot read {token_file}: {error}"
                raise ApiError(message) from error
        return cls(url, token)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise ApiError(error_text(error.code, error.read())) from error
        except urllib.error.URLError as error:
            raise ApiError(f"cannot reach {self.url}: {error.reason}") from error

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return json.loads(self.call(method, path, body))


def error_text(status: int, body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return f"HTTP {status} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def status(client: ApiClient, args: argparse.Namespace) -> None:
    path = f"/api/feishu/bots/{args.bot_id}/ws/status" if args.bot_id else "/api/feishu/ws/status"
    result = client.json("GET", path)
    rows = [result] if args.bot_id else result["connections"]
    print(json.dumps(result, indent=2) if args.json else table(rows, STATUS_COLUMNS))


def connect(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("POST", f"/api/feishu/bots/{args.bot_id}/ws/connect")
    print(json.dumps(result) if args.json else f"{args.bot_id}: {result['status']}")


def disconnect(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("POST", f"/api/feishu/bots/{args.bot_id}/ws/disconnect")
    print(json.dumps(result) if args.json else f"{args.bot_id}: {result['status']}")


def logs(client: ApiClient, args: argparse.Namespace) -> None:
    """Print the tail; with -f, keep printing lines as they are written."""
    text = client.call("GET", f"/api/feishu/bots/{args.bot_id}/logs?tail={args.tail}").decode()
    sys.stdout.write(text)
    last_lines = text.splitlines()
    while args.follow:
        time.sleep(1.0)
        window = client.call("GET", f"/api/feishu/bots/{args.bot_id}/logs?tail=1000").decode()
        lines = window.splitlines()
        start = _overlap(last_lines, lines)
        for line in lines[start:]:
            print(line)
        sys.stdout.flush()
        last_lines = lines


def _overlap(previous: list[str], current: list[str]) -> int:
    """Index in `current` just after the last line already printed."""
    if not previous:
        return 0
    tail = previous[-1]
    for index in range(len(current) - 1, -1, -1):
        if current[index] == tail:
            return index + 1
    return 0


def bots_add(client: ApiClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {
        "name": args.name,
        "appId": args.app_id,
        "appSecret": os.environ.get("LARKFLEET_APP_SECRET") or args.app_secret,
        "domain": args.domain,
        "useWebSocket": not args.webhook,
    }
    for name, field in (("verification_token", "verificationToken"),
                        ("encrypt_key", "encryptKey")):
        value = os.environ.get(f"LARKFLEET_{name.upper()}") or getattr(args, name, None)
        if value:
            body[field] = value
    if args.handler:
        body["handler"] = handler_json(args.handler)
    result = client.json("POST", "/api/feishu/bots", body)
    print(json.dumps(result) if args.json else f"created {result['id']}")


def bots_list(client: ApiClient, args: argparse.Namespace) -> None:
    result = client.json("GET", "/api/feishu/bots")
    bots = result["bots"] if isinstance(result, dict) else result
    columns = ("id", "name", "appId", "useWebSocket", "domain")
    print(json.dumps(result, indent=2) if args.json else table(bots, columns))


def run(args: argparse.Namespace) -> int:
    try:
        args.action(ApiClient.from_args(args), args)
    except SettingError as error:
        print(f"larkfleet: {error}", file=sys.stderr)
        return 2
    except ApiError as error:
        print(f"larkfleet: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
