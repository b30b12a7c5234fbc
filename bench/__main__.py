"""`python -m bench [--quick] [--out PATH]` (also `larkfleet bench`): runs the bench and
writes the report; `make bench` runs the full one into docs/benchmarks.md."""

import argparse
import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"

log = logging.getLogger("bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="N=10 and few events: seconds, not minutes (make test runs it)")
    parser.add_argument("--out", type=Path, help=f"report path (default {DEFAULT_OUT})")
    return parser


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        args = build_parser().parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The bench reuses the tests' service harness, so it runs from a checkout.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
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
