"""`python -m bench [--quick] [--out PATH]` (also `larkfleet bench`): runs the bench and
writes the report, by default to an untracked file under ./build. `docs/benchmarks.md` is
refreshed on purpose only: `larkfleet bench --out docs/benchmarks.md`."""

import argparse
import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUT = Path("build") / "benchmarks.md"
"""Relative to the working directory: the bench works from an installed wheel too, where
the package's own folder is no place to write."""

log = logging.getLogger("bench")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's options, shared by `python -m bench` and `larkfleet bench`."""
    parser.add_argument("--quick", action="store_true",
                        help="N=10 and few events: seconds, not minutes (make test runs it)")
    parser.add_argument("--out", type=Path, help=f"report path (default {DEFAULT_OUT})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_arguments(parser)
    return parser


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        args = build_parser().parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from bench import report, run

    plan = run.QUICK if args.quick else run.Plan()
    out: Path = args.out or DEFAULT_OUT
    entry = "larkfleet bench" if getattr(args, "command", None) == "bench" else "python -m bench"
    command = entry + (" --quick" if args.quick else "") + (
        f" --out {shlex.quote(str(args.out))}" if args.out else "")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="larkfleet-bench-") as work:
        figures = run.run(plan, Path(work))
    duration = time.monotonic() - began
    print(report.table(figures))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.markdown(figures, command, duration))
    log.info("wrote %s in %.0f s", out, duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
