"""The whole path over TLS, as production runs it: discovery, token and reply over
`https`, the long connection over `wss`, the workers trusting a CA through the standard
variables (`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`), as a corporate CA is configured."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import tls
from simulator.client import SimClient
from simulator.testing import SimulatorThread
from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import FAST_APP


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorThread, Path]]:
    tls_dir = tmp_path_factory.mktemp("sim-tls")
    with SimulatorThread(tls_dir=tls_dir) as thread:
        yield thread, tls_dir


def test_bot_connects_over_wss_and_replies_over_https(
    tls_sim: tuple[SimulatorThread, Path], tmp_path: Path
) -> None:
    sim, tls_dir = tls_sim
    assert sim.url.startswith("https://")
    client = SimClient(sim.url, verify=str(tls_dir / tls.CA_FILE))
    client.create_app("cli_tls", "secret-tls", **FAST_APP)
    service = Service(tmp_path / "data", env=tls.client_env(tls_dir)).start()
    try:
        bot_id = service.create_bot("cli_tls", "secret-tls", sim.url, handler={"kind": "echo"})
        service.connect(bot_id)
        service.wait_state(bot_id, "connected")
        pushed = client.push_event("cli_tls", "over tls")
        replies = wait_until(
            lambda: [m for m in client.sent("cli_tls") if m.get("text") == "over tls"],
            15, "the echo over https")
        assert len(replies) == 1
    finally:
        service.stop()
    assert pushed["eventId"]


def test_untrusted_ca_is_refused(
    tls_sim: tuple[SimulatorThread, Path], shared_service: Service
) -> None:
    """Without the CA the worker must not connect: TLS is verified, not merely used. The
    session's shared service was started without the test CA in its environment."""
    sim, tls_dir = tls_sim
    assert not any(str(tls_dir) in value for value in shared_service.env.values())
    client = SimClient(sim.url, verify=str(tls_dir / tls.CA_FILE))
    client.create_app("cli_tls_untrusted", "secret-u", **FAST_APP)
    bot_id = shared_service.create_bot("cli_tls_untrusted", "secret-u", sim.url)
    try:
        shared_service.connect(bot_id)
        status = shared_service.wait_status(
            bot_id, lambda s: s["state"] in ("reconnecting", "error"), 30,
            "the connection refused for an unknown CA")
        assert status["state"] != "connected"
        assert client.info("cli_tls_untrusted")["connections"] == 0
    finally:  # its worker would go on retrying in the shared service
        deleted = shared_service.request("DELETE", f"/api/feishu/bots/{bot_id}")
        assert deleted.status_code == 200, deleted.text
