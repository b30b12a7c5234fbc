"""`larkfleet` command line: one subcommand per job, each imported only when used.

Importing lazily keeps `larkfleet status` fast: it never pays for lark_oapi.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
    p.add_argument("--port", type=int, help=f"default {DEFAULT_PORT} (LARKFLEET_PORT)")
    p.add_argument("--log-level", help="default INFO (LARKFLEET_LOG_LEVEL)")
    p.add_argument("--handler-path", help="folders (separated by ':') that python handler "
                   "modules are imported from, searched first (LARKFLEET_HANDLER_PATH)")
    p.add_argument("--config", help="a TOML file (LARKFLEET_CONFIG)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration, secrets masked, and exit")
    p.set_defaults(run=lambda a: _call("supervisor.serve", "main", a))


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the Feishu platform simulator alone",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_SIM_PORT,
                   help="port to listen on (0: any free port, printed at start)")
    p.add_argument("--tls-dir", type=Path, default=None,
                   help="serve https/wss with a throwaway CA written to this directory")
    p.set_defaults(run=lambda a: _call("simulator.server", "main", a))


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulator + supervisor + one echo bot, no account needed",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="A port that is taken is replaced by a free one (said so).")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="the API's port")
    p.add_argument("--sim-port", type=int, default=DEFAULT_SIM_PORT, help="the simulator's port")
    p.set_defaults(run=lambda a: _call("supervisor.demo", "main", a))


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from bench.__main__ import add_arguments

    p = sub.add_parser("bench", help="benchmark against the bare SDK")
    add_arguments(p)
    p.set_defaults(run=lambda a: _call("bench.__main__", "main", a))


def _add_clients(sub: argparse._SubParsersAction) -> None:
    """Thin clients of the HTTP API; they share --url, --data-dir (for the token) and --json."""
    from supervisor import apiclient

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=default_url(),
                        help="the service's base URL (LARKFLEET_URL, else "
                        "http://127.0.0.1:$LARKFLEET_PORT; now %(default)s)")
    common.add_argument("--data-dir", default=_env("DATA_DIR", "./data"),
                        help="read the admin token from <data-dir>/admin.token when "
                        "LARKFLEET_TOKEN is unset (LARKFLEET_DATA_DIR; now %(default)s)")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    def client(name: str, action: Callable[..., None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, epilog=CLIENT_ENVIRONMENT,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(run=apiclient.run, action=action)
        return p

    client("status", apiclient.status, "show bots' connection state").add_argument(
        "bot_id", nargs="?"
    )
    client("connect", apiclient.connect, "connect a bot").add_argument("bot_id")
    client("disconnect", apiclient.disconnect, "disconnect a bot").add_argument("bot_id")
    logs = client("logs", apiclient.logs, "print a bot's log")
    logs.add_argument("bot_id")
    logs.add_argument("-n", "--tail", type=int, default=100)
    logs.add_argument("-f", "--follow", action="store_true")

    bots = sub.add_parser("bots", help="list or add bots").add_subparsers(
        dest="bots_command", required=True
    )
    listing = bots.add_parser("list", parents=[common], help="list bots")
    listing.set_defaults(run=apiclient.run, action=apiclient.bots_list)
    add = bots.add_parser("add", parents=[common], help="register a bot")
    add.set_defaults(run=apiclient.run, action=apiclient.bots_add)
    add.add_argument("--name", required=True)
    add.add_argument("--app-id", required=True)
    add.add_argument("--app-secret", default="", help="or LARKFLEET_APP_SECRET (safer)")
    add.add_argument("--domain", default="feishu")
    add.add_argument("--webhook", action="store_true", help="webhook mode instead of WebSocket")
    add.add_argument("--handler", help='JSON, e.g. \'{"kind": "echo"}\'')


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
    _add_demo(sub)
    _add_bench(sub)
    _add_clients(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
