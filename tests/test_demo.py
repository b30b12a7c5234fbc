"""`larkfleet demo` shows a bot answering, with no account, and cleans up after itself."""

import signal
import subprocess
import sys
from pathlib import Path

from simulator.testing import wait_until
from tests.fixtures.service import alive, free_port, process_tree

LARKFLEET = str(Path(sys.executable).with_name("larkfleet"))


def test_demo_answers_and_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    command = [LARKFLEET, "demo", "--port", str(free_port()), "--sim-port", str(free_port())]
    with out.open("wb") as sink:
        demo = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "Data directory:" in out.read_text(), 90, "the demo to be ready")
        text = out.read_text()
        assert "bot   < hello larkfleet" in text
        assert "connected" in text
        assert "export TOKEN=" in text
        children = process_tree().get(demo.pid, [])
        assert children
    finally:
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(30) == 0
    wait_until(lambda: not any(alive(pid) for pid in children), 10, "the service to stop")
