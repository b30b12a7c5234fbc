"""`larkfleet demo` shows a bot answering, with no account, and cleans up after itself."""

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from simulator.testing import wait_until
from tests.fixtures.service import alive, free_port, process_tree

LARKFLEET = str(Path(sys.executable).with_name("larkfleet"))


def test_demo_answers_and_stops_cleanly(tmp_path: Path) -> None:
    """Its port taken by another service (a `make run`), the demo moves and says so."""
    out = tmp_path / "demo.out"
    with socket.socket() as other_service:
        other_service.bind(("127.0.0.1", 0))
        other_service.listen()
        taken = other_service.getsockname()[1]
        command = [LARKFLEET, "demo", "--port", str(taken), "--sim-port", str(free_port())]
        with out.open("wb") as sink:
            demo = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "Data directory:" in out.read_text(), 90, "the demo to be ready")
            text = out.read_text()
            assert f"port {taken} is taken" in text
            assert "bot   < hello larkfleet" in text
            assert "connected" in text
            exported = re.search(r"export LARKFLEET_URL=(\S+) LARKFLEET_TOKEN=(\S+)", text)
            assert exported, text
            assert f":{taken}" not in exported[1]
            cli = Path(sys.executable).with_name("larkfleet")
            status = subprocess.run(
                [str(cli), "status", "--json"], capture_output=True, text=True, timeout=30,
                env={"LARKFLEET_URL": exported[1], "LARKFLEET_TOKEN": exported[2]},
            )
            assert status.returncode == 0, status.stderr
            data_dir = Path(re.search(r"Data directory: (\S+)", text)[1])  # type: ignore[index]
            assert data_dir.is_dir()
            children = process_tree().get(demo.pid, [])
            assert children
        finally:
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(30) == 0
    wait_until(lambda: not any(alive(pid) for pid in children), 10, "the service to stop")
    assert not data_dir.parent.exists(), "the demo removes its temporary directory"
