"""Issue 3's acceptance script: only the real SDK and the control API, against `larkfleet sim`."""

import re
import subprocess
import sys
from pathlib import Path

LARKFLEET = str(Path(sys.executable).with_name("larkfleet"))


def test_smoke_script_against_a_sim_process() -> None:
    sim = subprocess.Popen([LARKFLEET, "sim", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        url = re.search(r"http://\S+", sim.stdout.readline()).group(0)
        result = subprocess.run(
            [sys.executable, "-m", "simulator.smoke", url],
            capture_output=True, text=True, timeout=90,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "survived a drop" in result.stdout and "smoke: OK" in result.stdout
    finally:
        sim.terminate()
        assert sim.wait(15) == 0
