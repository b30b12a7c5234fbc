"""`larkfleet` command line: one subcommand per job, each imported only when used.

Importing lazily keeps `larkfleet status` fast: it never pays for lark_oapi.
"""

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.ports import port_number

DEFAULT_PORT = 13000
DEFAULT_SIM_PORT = 18080


CLIENT_ENVIRONMENT = f"""environment:
  LARKFLEET_URL        the service's base URL (default http://127.0.0.1:$LARKFLEET_PORT)
  LARKFLEET_PORT       the service's port when LARKFLEET_URL is unset (default {DEFAULT_PORT})
  LARKFLEET_TOKEN      the API token (default: read <data-dir>/admin.token)
  LARKFLEET_DATA_DIR   where admin.token is read from (default ./data)
"""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LARKFLEET_{name}", default)


def default_url() -> str:
    """LARKFLEET_URL, else the local service on LARKFLEET_PORT (what `make run PORT=` set)."""
    return _env("URL", f"http://127.0.0.1:{_env('PORT', str(DEFAULT_PORT))}")


def positive_seconds(text: str) -> float:
    """`text` as seconds > 0 (argparse `type=`); raises ArgumentTypeError otherwise, which
    argparse reports as a usage error (exit 2) naming the flag: a negative or NaN
    `--timeout` would otherwise give up at once, or never."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An argparse `type=` taking integers >= `low` (exit 2 naming the flag otherwise)."""
    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {low}")
        return value
    return integer


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("larkfleet")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the supervisor, its workers and the API",
        description="Flags win over LARKFLEET_* variables, which win over the config file.",
    )
    p.add_argument("--data-dir", help="default ./data (LARKFLEET_DATA_DIR)")
    p.add_argument("--host", help="default 127.0.0.1 (LARKFLEET_HOST)")
    p.add_argument("--port", type=int, help=f"default {DEFAULT_PORT} (LARKFLEET_PORT; 0-65535,"
                   " 0: any free port)")
    p.add_argument("--log-level", help="default INFO (LARKFLEET_LOG_LEVEL)")
    p.add_argument("--handler-path", help="folders (separated by ':') that python handler "
                   "modules are imported from, searched first (LARKFLEET_HANDLER_PATH)")
    p.add_argument("--config", help="a TOML file (LARKFLEET_CONFIG)")
    p.add_argument("--database", dest="database_url", metavar="URL",
                   help="cluster mode: postgresql://user:password@host/db shared by every node"
                        " (LARKFLEET_DATABASE_URL); default: the embedded SQLite registry")
    p.add_argument("--node-id", help="this node's id, default the hostname (LARKFLEET_NODE_ID)")
    p.add_argument("--node-address",
                   help="URL the other nodes reach this node's API at, default"
                        " http://<hostname>:<port> (LARKFLEET_NODE_ADDRESS)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration, secrets masked, and exit")
    p.set_defaults(run=lambda a: _call("supervisor.serve", "main", a))


def _add_rotate_key(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rotate-key", help="re-encrypt every stored secret under a new key,"
                       " the service may keep running (docs/operations.md)")
    p.add_argument("--data-dir", default=_env("DATA_DIR", "./data"),
                   help="LARKFLEET_DATA_DIR; now %(default)s")
    p.add_argument("--database", dest="database_url", metavar="URL",
                   default=os.environ.get("LARKFLEET_DATABASE_URL") or None,
                   help="cluster mode's PostgreSQL registry (LARKFLEET_DATABASE_URL)")
    p.set_defaults(run=lambda a: _call("supervisor.rotatekey", "main", a))


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the Feishu platform simulator alone",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=port_number, default=DEFAULT_SIM_PORT,
                   help="port to listen on (0: any free port, printed at start)")
    p.add_argument("--tls-dir", type=Path, default=None,
                   help="serve https/wss with a throwaway CA written to this directory")
    p.set_defaults(run=lambda a: _call("simulator.server", "main", a))


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulator + supervisor + one echo bot, no account needed",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="A port that is taken is replaced by a free one (said so).")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="the API's port")
    p.add_argument("--sim-port", type=port_number, default=DEFAULT_SIM_PORT,
                   help="the simulator's port")
    p.set_defaults(run=lambda a: _call("supervisor.demo", "main", a))


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from bench.__main__ import add_arguments

    p = sub.add_parser("bench", help="benchmark against the bare SDK")
    add_arguments(p)
    p.set_defaults(run=lambda a: _call("bench.__main__", "main", a))


def _client_options() -> argparse.ArgumentParser:
    """--url, --data-dir (for the token) and --json, shared by every client command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=default_url(),
                        help="the service's base URL (LARKFLEET_URL, else "
                        "http://127.0.0.1:$LARKFLEET_PORT; now %(default)s)")
    common.add_argument("--data-dir", default=_env("DATA_DIR", "./data"),
                        help="read the admin token from <data-dir>/admin.token when "
                        "LARKFLEET_TOKEN is unset (LARKFLEET_DATA_DIR; now %(default)s)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def _add_clients(sub: argparse._SubParsersAction) -> None:
    """Thin clients of the HTTP API: one command per API operation."""
    from supervisor import apiclient, climanage, cliwatch

    common = _client_options()

    def client(group: argparse._SubParsersAction, name: str, action: Callable[..., None],
               help_: str) -> argparse.ArgumentParser:
        p = group.add_parser(name, parents=[common], help=help_, epilog=CLIENT_ENVIRONMENT,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(run=apiclient.run, action=action)
        return p

    def group(name: str, help_: str) -> argparse._SubParsersAction:
        return sub.add_parser(name, help=help_).add_subparsers(
            dest=f"{name}_command", required=True)

    status = client(sub, "status", cliwatch.status, "show bots' connection state")
    status.add_argument("bot_id", nargs="?")
    status.add_argument("-w", "--watch", action="store_true",
                        help="then print each state change as it happens (every record "
                        "as a JSON line with --json), until Ctrl-C")
    connect = client(sub, "connect", cliwatch.connect, "connect a bot")
    connect.add_argument("bot_id")
    connect.add_argument("--wait", action="store_true",
                         help="return once connected (exit 0) or refused (exit 1)")
    connect.add_argument("--timeout", type=positive_seconds, default=60.0,
                         help="seconds --wait waits (default 60)")
    client(sub, "disconnect", apiclient.disconnect, "disconnect a bot").add_argument("bot_id")
    logs = client(sub, "logs", apiclient.logs, "print a bot's log")
    logs.add_argument("bot_id")
    logs.add_argument("-n", "--tail", type=at_least(0), default=100)
    logs.add_argument("-f", "--follow", action="store_true")
    send = client(sub, "send", climanage.send, "send a text message through a bot")
    send.add_argument("bot_id")
    send.add_argument("text")
    send.add_argument("--to", required=True, help="the receiver's id")
    send.add_argument("--to-type", default="open_id",
                      choices=("open_id", "user_id", "union_id", "email", "chat_id"))
    send.add_argument("--uuid", help="idempotency key: a resend with it is not sent twice")

    bots = group("bots", "list, add, show, edit or delete bots")
    client(bots, "list", apiclient.bots_list, "list bots")
    add = client(bots, "add", apiclient.bots_add, "register a bot")
    add.add_argument("--name", required=True)
    add.add_argument("--app-id", required=True)
    add.add_argument("--app-secret", default="", help="or LARKFLEET_APP_SECRET (safer)")
    add.add_argument("--domain", default="feishu")
    add.add_argument("--webhook", action="store_true", help="webhook mode instead of WebSocket")
    add.add_argument("--verification-token", help="webhook mode; or "
                     "LARKFLEET_VERIFICATION_TOKEN")
    add.add_argument("--encrypt-key", help="webhook mode; or LARKFLEET_ENCRYPT_KEY")
    add.add_argument("--handler", help='JSON, e.g. \'{"kind": "echo"}\'')
    client(bots, "show", climanage.bots_show, "one bot (never its secrets)").add_argument(
        "bot_id")
    edit = client(bots, "edit", climanage.bots_edit,
                  "change a bot's fields (a running worker restarts with them)")
    edit.add_argument("bot_id")
    climanage.add_bot_fields(edit)
    client(bots, "delete", climanage.bots_delete,
           "disconnect and delete a bot, its spool and its log").add_argument("bot_id")

    users = group("users", "list, add or delete users (admin)")
    client(users, "list", climanage.users_list, "every user")
    client(users, "add", climanage.users_add, "a new user; prints its token once").add_argument(
        "name")
    client(users, "delete", climanage.users_delete, "a user owning no bots").add_argument(
        "user_id")

    tokens = group("tokens", "issue, list or revoke a user's tokens")
    issue = client(tokens, "add", climanage.tokens_add, "another token; printed once")
    issue.add_argument("user_id")
    issue.add_argument("--scope", choices=("owner", "viewer"),
                       help="viewer: read-only (default owner)")
    issue.add_argument("--expires-at", help="ISO-8601 time the token stops working")
    client(tokens, "list", climanage.tokens_list, "a user's tokens (never the tokens "
           "themselves)").add_argument("user_id")
    revoke = client(tokens, "revoke", climanage.tokens_revoke,
                    "revoke one token, or every token of a user (admin)")
    revoke.add_argument("user_id")
    revoke.add_argument("token_id", nargs="?", help="the token's id (`tokens list`)")

    audit = client(sub, "audit", climanage.audit, "every change made through the API (admin)")
    audit.add_argument("-n", "--limit", type=at_least(1), default=50)
    audit.add_argument("--before", type=at_least(1), help="entries older than this id (paging)")

    letters = group("dead-letters", "events a bot's handler gave up on")
    client(letters, "list", climanage.dead_letters_list, "a bot's dead letters").add_argument(
        "bot_id")
    retry = client(letters, "retry", climanage.dead_letters_retry, "queue one again")
    retry.add_argument("bot_id")
    retry.add_argument("event_id")


def _call(module: str, func: str, args: argparse.Namespace) -> int:
    import importlib

    target: Callable[[argparse.Namespace], int | None] = getattr(
        importlib.import_module(module), func
    )
    return target(args) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larkfleet", description="Run many Feishu/Lark bots from one host.",
        epilog=CLIENT_ENVIRONMENT + "\n`larkfleet serve --help` lists the service's settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"larkfleet {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_sim(sub)
    _add_rotate_key(sub)
    _add_demo(sub)
    _add_bench(sub)
    _add_clients(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
