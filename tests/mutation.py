"""`make mutation`: mutation testing of the modules that hold the README's promises.

mutmut (pinned in pyproject's `mutation` extra) changes one thing at a time in a module (a
comparison, a constant, a removed call) and reruns that module's fast unit tests; a change no
test notices is a surviving mutant, a promise nothing holds. Each module runs in its own copy
of the working tree under `build/mutation/<module>/`, against its own unit tests only, so a
slow integration test never runs once per mutant. Not part of `make test`.

    python -m tests.mutation                # every module, then the table of scores
    python -m tests.mutation backoff spool  # some modules (while developing)

Prints each module's score (killed / all mutants: a mutant no test reaches counts as
surviving), the score without the mutants that only change the letter case of SQL text
(equivalent: SQLite is case-insensitive there), and every other survivor as a diff; exits 1
when a module is under `THRESHOLD` by the second score. docs/testing.md says why the
survivors it lists are equivalent.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "mutation"
PACKAGES = ["supervisor", "shared", "worker", "api", "store", "simulator", "bench"]
THRESHOLD = 0.80

MODULES: dict[str, tuple[list[str], list[str]]] = {
    "lifecycle": (["supervisor/lifecycle.py"], ["tests/test_lifecycle.py"]),
    "backoff": (["supervisor/backoff.py"], ["tests/test_backoff.py"]),
    "content": (["worker/content.py"], ["tests/test_event_content.py"]),
    "spool": (["worker/spool.py"], ["tests/test_event_spool.py"]),
    "webhook": (["worker/webhook.py"], ["tests/test_event_webhook.py"]),
    "redaction": (["shared/logs.py"], ["tests/test_logs.py", "tests/test_log_setup.py"]),
    "auth": (["api/auth.py"], ["tests/test_api_auth.py"]),
    "pacing": (["worker/pacing.py"], ["tests/test_pacing.py"]),
}
"""Module name -> (files mutated, the fast unit tests that must notice)."""

KILLED = {"killed", "timeout", "segfault"}
RESULT_LINE = re.compile(r"^\s*(\S+): (.+)$")
SQL = re.compile(r"\b(select|update|insert|delete|pragma|where|from|values|returning|begin|"
                 r"commit|rollback)\b", re.IGNORECASE)


def sql_case_only(diff: str) -> bool:
    """True for a mutant that only changes the letter case of SQL text without a quoted value:
    SQLite's keywords, table and column names are case-insensitive, so no test can tell."""
    removed = [line[1:] for line in diff.splitlines()
               if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    return (len(removed) == len(added) == 1 and removed[0] != added[0]
            and removed[0].lower() == added[0].lower()
            and "'" not in removed[0] and bool(SQL.search(removed[0])))


@dataclass
class Score:
    module: str
    results: dict[str, str]
    seconds: float
    diffs: dict[str, str]
    """Survivor -> its diff."""

    @property
    def killed(self) -> int:
        return sum(status in KILLED for status in self.results.values())

    @property
    def survivors(self) -> list[str]:
        return sorted(name for name, status in self.results.items() if status not in KILLED)

    @property
    def ratio(self) -> float:
        return self.killed / len(self.results) if self.results else 0.0

    @property
    def equivalent(self) -> list[str]:
        return [name for name in self.survivors if sql_case_only(self.diffs.get(name, ""))]

    @property
    def adjusted(self) -> float:
        """The score without the mechanically recognised equivalent mutants."""
        counted = len(self.results) - len(self.equivalent)
        return self.killed / counted if counted else 0.0


def tree_files() -> list[str]:
    """The working tree as git sees it (tracked and new files), so uncommitted work counts."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line and (REPO / line).is_file()]


def prepare(module: str, mutate: list[str], tests: list[str]) -> Path:
    """A fresh copy of the tree with a [tool.mutmut] section for this module only."""
    work = BUILD / module
    shutil.rmtree(work, ignore_errors=True)
    for name in tree_files():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    quoted = ", ".join(f'"{p}"' for p in PACKAGES)
    settings = (
        "\n[tool.mutmut]\n"
        f"source_paths = [{quoted}]\n"
        f"only_mutate = [{', '.join(repr(m) for m in mutate)}]\n"
        f"pytest_add_cli_args_test_selection = [{', '.join(repr(t) for t in tests)}]\n"
        'also_copy = ["conftest.py"]\n'
    )
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + settings)
    return work


def mutmut(work: Path, *args: str, log: Path | None = None) -> str:
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    if log is None:
        return subprocess.run(command, cwd=work, capture_output=True, text=True,
                              check=True).stdout
    with log.open("w") as out:
        subprocess.run(command, cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False)
    return ""


def run(module: str, children: int) -> Score:
    mutate, tests = MODULES[module]
    work = prepare(module, mutate, tests)
    started = time.monotonic()
    mutmut(work, "run", "--max-children", str(children), log=work / "mutmut.log")
    results = {}
    for line in mutmut(work, "results", "--all", "true").splitlines():
        match = RESULT_LINE.match(line)
        if match:
            results[match.group(1)] = match.group(2).strip()
    score = Score(module, results, time.monotonic() - started, {})
    score.diffs = diffs(work, score.survivors)
    return score


DIFFS = """
import json, sys
from mutmut.__main__ import find_mutant, get_diff_for_mutant
names = json.load(sys.stdin)
print(json.dumps({n: get_diff_for_mutant(n, path=find_mutant(n).path) for n in names}))
"""


def diffs(work: Path, names: list[str]) -> dict[str, str]:
    """Each mutant's diff, from one process (one `mutmut show` per mutant costs minutes)."""
    if not names:
        return {}
    done = subprocess.run([sys.executable, "-c", DIFFS], cwd=work, input=json.dumps(names),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(MODULES))
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    names = args.modules or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    scores = []
    for module in names:
        mutate, tests = MODULES[module]
        missing = [p for p in mutate + tests if not (REPO / p).exists()]
        if missing:
            print(f"{module}: skipped, {', '.join(missing)} not in this tree", flush=True)
            continue
        score = run(module, args.children)
        scores.append(score)
        print(f"{module}: {score.killed}/{len(score.results)} killed "
              f"({score.ratio:.0%}; {score.adjusted:.0%} without {len(score.equivalent)} "
              f"SQL-case mutants) in {score.seconds:.0f} s", flush=True)
        for name in score.survivors:
            if name not in score.equivalent:
                print(f"\n--- {name}: {score.results[name]}\n{score.diffs[name]}", flush=True)
    print("\nmodule       killed/all   score   without SQL-case mutants")
    for s in scores:
        print(f"{s.module:<12} {s.killed:>4}/{len(s.results):<6} {s.ratio:>6.0%}   "
              f"{s.adjusted:>6.0%} ({len(s.equivalent)} set aside)")
    low = [s.module for s in scores if s.adjusted < THRESHOLD]
    if low:
        print(f"under {THRESHOLD:.0%}: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
