"""The quick bench, once per `make test`, so the bench cannot rot.

It asserts that every figure was produced, not the targets: timings on a busy
test machine are not a verdict; the full run's report is (docs/benchmarks.md).
The bench itself runs beside the other tests from the start of the session
(tests/fixtures/bench.py); the run test comes last and checks its report.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.bench import QuickBench

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
FIGURES = (
    ("ACK latency p50 / p99, durable spool on", "100 sequential"),
    ("event throughput, one bot", "500, window 50"),
    ("event -> reply latency (echo) p50 / p99", "15 sequential"),
    ("event -> first visible token (streamed card) p50 / p99", "5 sequential"),
    ("webhook: url_verification challenge answered p50 / p99", "10 sequential"),
    ("webhook: signed, encrypted event answered 200 p50 / p99", "10 sequential"),
    ("private memory (USS) per connected idle bot", "N=10"),
    ("supervisor RSS growth per bot", "N=10"),
    ("connect: N connect calls -> all N connected", "N=10"),
    ("status API GET /api/feishu/ws/status", "10 bots, 100 requests"),
    ("recovery: kill -9 worker -> connected p50 / p99", "2 trials, 1 per bot"),
    ("hang: SIGSTOP worker -> replaced p50 / max", "2 trials, 1 per bot"),
    ("zygote (forkserver, one per host)", "once"),
    ("supervisor restart -> all N bots connected", "N=10"),
    ("CPU at rest: supervisor + zygote + N idle workers", "N=10"),
    ("busy bot among N idle: ACK latency p50 / p99", "N=10"),
    ("busy bot among N idle: event -> reply latency (echo) p50 / p99", "N=10"),
    ("kill -9 of 3 workers at once -> all connected", "N=10"),
    ("host: kernel page-access monitor (DAMON kdamond) CPU", "N=10"),
)


def _rows(markdown: str) -> dict[tuple[str, str], list[str]]:
    """(figure, scale) -> the other cells of the figures table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 8:
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_quick_bench_produces_every_figure(quick_bench: QuickBench) -> None:
    done = quick_bench.wait()
    assert done.returncode == 0, done.stderr[-4000:]
    report = done.report.read_text()
    assert "larkfleet bench --quick" in report
    assert "logical cores" in report and "lark-oapi 1.7" in report
    rows = _rows(report)
    for figure in FIGURES:
        assert figure in rows, f"missing figure {figure}"
        fleet, bare, ratio, target, met, _plain = rows[figure]
        assert fleet and bare and ratio and target and met
        assert "nan" not in fleet.lower()
    shipped = ROOT / "docs" / "benchmarks.md"
    if shipped.exists():
        command = next(line for line in shipped.read_text().splitlines()
                       if line.startswith("Command:"))  # the report's header names its run
        assert "--quick" not in command, "docs/benchmarks.md must come from a full run"


def test_bench_imports_nothing_from_tests(tmp_path: Path) -> None:
    """The wheel and the image ship bench/ but not tests/: every bench module must import
    from outside a checkout (run from an empty directory, so tests/ is not on the path)."""
    modules = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module('bench.' + m)"
    done = subprocess.run([sys.executable, "-c", code, *modules], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
