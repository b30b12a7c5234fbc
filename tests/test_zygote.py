"""The zygote pays the cold start before readiness: forking a worker after `warm_up` does
no lazy work in the supervisor. Real forkserver, real worker, in a fresh interpreter (the
test process itself has imported the SDK long ago)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.service import FAST_ENV

pytestmark = pytest.mark.timeout(120)

SCRIPT = """
import json, sys
import multiprocess.process
from shared.botconfig import BotConfig, EchoHandler
from shared.messages import WorkerSpec
from supervisor.zygote import Zygote, kill

zygote = Zygote()
zygote.warm_up()
warm = sorted(sys.modules)
bot = BotConfig(id="bot-zygote", name="Bot", app_id="cli_unused", app_secret="unused-secret",
                domain="http://127.0.0.1:9", handler=EchoHandler())
data = sys.argv[1]
process = zygote.spawn(WorkerSpec(bot=bot, incarnation=1, data_dir=data,
                                  control_endpoint="ipc://" + data + "/control"))
children = len(multiprocess.process._children)
kill(process)
process.join(10)
print(json.dumps({"sdk": "lark_oapi" in sys.modules, "worker": "worker.main" in sys.modules,
                  "new": sorted(set(sys.modules) - set(warm)), "children": children,
                  "exitcode": process.exitcode}))
"""


def test_forking_a_worker_imports_nothing_new_in_the_supervisor(tmp_path: Path) -> None:
    """The first connect after /readyz used to import worker.main, and with it lark_oapi,
    in the supervisor to pickle the worker's target: ~6 s on a loaded host, paid by the
    first user. The target now comes from a light module the warm-up already used.

    The handle also leaves multiprocess's `_children` set (`children` 0): BaseProcess.start()
    polls every handle there before it forks, so the Nth worker's start polled N workers,
    O(N^2) over a 1,000-bot connect; join() still reads the exit code."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=110, cwd=Path(__file__).parents[1],
                          env={**os.environ, **FAST_ENV})
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"sdk": False, "worker": False, "new": [], "children": 0,
                     "exitcode": -9}


MAIN_SCRIPT = """
import sys
import xml.dom.minidom  # noqa: F401  (not in the zygote: a child re-running this would import it)

from supervisor.worker_process import WorkerProcess
from supervisor.zygote import Zygote

PROBE = "import sys; sys.exit(3 if hasattr(sys.modules['__main__'], '__file__') else 0)"

if __name__ == "__main__":
    Zygote().warm_up()
    print("forking the probe", file=sys.stderr, flush=True)
    process = WorkerProcess(target=exec, args=(PROBE,), daemon=False)
    process.start()
    process.join(30)
    print(process.exitcode)
"""


def test_a_forked_child_imports_nothing_and_does_not_rerun_the_main_script(
        tmp_path: Path) -> None:
    """Each worker used to import `supervisor.worker_process` (its handle's class, which
    the zygote had not preloaded) and re-run the supervisor's main script as __mp_main__
    after the fork (CPython gh-126631: the forkserver's own preload of __main__ never
    worked): compiling, path searches and module bodies, a few ms of CPU per worker.

    The supervisor here is a script file, as the `larkfleet` entry point is; Python reports
    every module it loads (PYTHONPROFILEIMPORTTIME) on the shared stderr, and after the
    warm-up only the probe's child can load any. The probe exits 3 if its __main__ is a
    file (the forkserver's own is `-c`; a re-run installs the script's)."""
    script = tmp_path / "supervisor_main.py"
    script.write_text(MAIN_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=110, cwd=Path(__file__).parents[1],
                          env={**os.environ, **FAST_ENV, "PYTHONPROFILEIMPORTTIME": "1",
                               "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0"], done.stdout
    after_fork = done.stderr.split("forking the probe", 1)[1]
    loaded = [line for line in after_fork.splitlines() if line.startswith("import time:")]
    assert loaded == []
