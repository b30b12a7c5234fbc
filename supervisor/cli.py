"""`larkfleet` command line: one subcommand per job, each imported only when used.

Importing lazily keeps `larkfleet status` fast: it never pays for lark_oapi.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence

DEFAULT_PORT = 13000
DEFAULT_SIM_PORT = 18080


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LARKFLEET_{name}", default)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the supervisor, its workers and the API")
    p.add_argument("--data-dir", default=_env("DATA_DIR", "./data"))
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("PORT", str(DEFAULT_PORT))))
    p.set_defaults(run=lambda a: _call("supervisor.serve", "main", a))


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the Feishu platform simulator alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_SIM_PORT)
    p.set_defaults(run=lambda a: _call("simulator.server", "main", a))


def _call(module: str, func: str, args: argparse.Namespace) -> int:
    import importlib

    target: Callable[[argparse.Namespace], int | None] = getattr(
        importlib.import_module(module), func
    )
    return target(args) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larkfleet", description="Run many Feishu/Lark bots from one host."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_sim(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
