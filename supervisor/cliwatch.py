"""`larkfleet status --watch` and `larkfleet connect --wait`: following the events stream.

Both read GET /api/feishu/events (Server-Sent Events): a snapshot record per
bot, then one record per change, so nothing is polled. `--watch` prints the
table once, then one line per state change (every record with `--json`, one
JSON object a line); `--wait` returns once the bot is `connected` (exit 0) or
`error` (exit 1), or fails after `--timeout` seconds.
"""

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from supervisor import apiclient
from supervisor.apiclient import STATUS_COLUMNS, ApiClient, ApiError, table

EVENTS_PATH = "/api/feishu/events"
READ_TIMEOUT = 40.0
"""Seconds without a byte before the stream counts as dead (the server sends a
keepalive comment every 15 s)."""


READY = {"kind": "ready"}
"""Yielded for the stream's `: ready` comment: the snapshot records are all in."""


def records(client: ApiClient, timeout: float = READ_TIMEOUT) -> Iterator[dict[str, Any]]:
    """Each `data:` record of the events stream, parsed, and READY after the snapshot.

    Raises ApiError when the stream breaks or ends.
    """
    request = urllib.request.Request(f"{client.url}{EVENTS_PATH}")
    request.add_header("Authorization", f"Bearer {client.token}")
    request.add_header("Accept", "text/event-stream")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            for raw in response:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data:"):
                    yield json.loads(line[5:].strip())
                elif line == ": ready":
                    yield READY
    except urllib.error.HTTPError as error:
        raise ApiError(apiclient.error_text(error.code, error.read())) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise ApiError(f"events stream from {client.url} broke: {reason}") from error
    raise ApiError("the service closed the events stream (stopping?)")


def change_line(record: dict[str, Any]) -> str:
    """One human line for a state change: time, bot, from -> to, why, error."""
    at = record.get("at", "")[11:19]
    error = f" - {record['error']}" if record.get("error") else ""
    return (f"{at}  {record['botId']}  {record.get('fromState') or '-'} -> "
            f"{record.get('state') or 'removed'}  ({record.get('why', '')}){error}")


def watch(client: ApiClient, args: argparse.Namespace) -> None:
    """Print the table of the snapshot, then every state change until Ctrl-C."""
    wanted = args.bot_id
    snapshot: list[dict[str, Any]] = []
    for record in records(client):
        if record is READY:
            if not args.json:
                print(table(snapshot, STATUS_COLUMNS), flush=True)
            continue
        if wanted and record["botId"] != wanted:
            continue
        if args.json:
            print(json.dumps(record), flush=True)
        elif record["kind"] == "snapshot":
            snapshot.append(record)
        elif record["kind"] in ("state", "removed"):
            print(change_line(record), flush=True)
    # records() only ends by raising


def status(client: ApiClient, args: argparse.Namespace) -> None:
    if args.watch:
        watch(client, args)
    else:
        apiclient.status(client, args)


def connect(client: ApiClient, args: argparse.Namespace) -> None:
    """Connect; with --wait, follow the stream until the bot is connected or refused."""
    if not args.wait:
        apiclient.connect(client, args)
        return
    deadline = time.monotonic() + args.timeout
    stream = records(client, timeout=min(READ_TIMEOUT, args.timeout))
    for record in stream:  # the snapshot is in: no change after it can be missed
        if record is READY:
            break
    client.json("POST", f"/api/feishu/bots/{args.bot_id}/ws/connect")
    record = client.json("GET", f"/api/feishu/bots/{args.bot_id}/ws/status")
    changes = _changes_of(stream, args.bot_id, deadline)
    try:
        while record.get("state") not in ("connected", "error", None):
            record = next(changes, None) or record
            if time.monotonic() > deadline:
                break
    except ApiError:
        if time.monotonic() <= deadline:
            raise
    state = record.get("state") or "removed"
    if state == "connected":
        print(json.dumps(record) if args.json else f"{args.bot_id}: connected")
    elif state == "error":
        raise ApiError(f"{args.bot_id}: error: {record.get('error')} "
                       f"(code {record.get('errorCode')})")
    else:
        raise ApiError(f"{args.bot_id}: still {state} after {args.timeout:g} s")


def _changes_of(
    stream: Iterator[dict[str, Any]], bot_id: str, deadline: float
) -> Iterator[dict[str, Any]]:
    """The stream's change records about one bot, until `deadline` (monotonic seconds)."""
    for record in stream:
        if time.monotonic() > deadline:
            return
        if record is not READY and record["botId"] == bot_id and record["kind"] != "snapshot":
            yield record
