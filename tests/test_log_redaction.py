"""Secrets that real code paths log are masked in the files on disk (README: "masked in every
log line").

Nothing here calls the redactor: the real service logs lines that carry a secret, and the test
reads the bot's and the supervisor's log files. The SDK logs the connection URL with its
`ticket=` credential when it connects; a python handler fails with the bot's appSecret in its
exception; the platform refuses an endpoint call with the appSecret in its message, which the
worker reports and the supervisor logs. Remove the logging filter and every check here fails.
"""

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.logs import MASK
from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import SimApp

pytestmark = pytest.mark.timeout(120)

LEAKY_HANDLER = '''"""Fails the way careless user code does: the credential in the error text."""

import os


def answer(message):
    raise RuntimeError("upstream refused app secret " + os.environ["LEAKY_APP_SECRET"])
'''

UNMASKED_TICKET = re.compile(r"ticket=(?!" + re.escape(MASK) + r")[^&\s'\"]+")


@pytest.fixture
def apps(sim_app: Callable[..., SimApp]) -> tuple[SimApp, SimApp]:
    return sim_app(), sim_app()


@pytest.fixture
def fleet(tmp_path: Path, apps: tuple[SimApp, SimApp]) -> Iterator[Service]:
    """A service whose python handler module reads the first app's secret from the env."""
    (tmp_path / "leaky_handler.py").write_text(LEAKY_HANDLER)
    python_path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": python_path, "LEAKY_APP_SECRET": apps[0].app_secret,
           "LARKFLEET_EVENT_MAX_ATTEMPTS": "1"}
    service = Service(tmp_path / "data", env=env).start()
    yield service
    if service.process is not None and service.process.poll() is None:
        service.stop()


def test_secrets_that_real_code_logs_are_masked_in_the_log_files(
    fleet: Service, apps: tuple[SimApp, SimApp]
) -> None:
    leaky, refused = apps
    logs = fleet.data_dir / "logs"

    bot_id = fleet.create_bot(leaky.app_id, leaky.app_secret, leaky.url,
                              handler={"kind": "python", "target": "leaky_handler:answer"})
    fleet.connect(bot_id)
    fleet.wait_state(bot_id, "connected")
    event_id = leaky.push("hello")["eventId"]
    fleet.wait_status(bot_id, lambda s: s["deadLetters"] == 1, 10, "the failure dead-lettered")
    letters = fleet.request("GET", f"/api/feishu/bots/{bot_id}/dead-letters").text
    assert "upstream refused" in letters and leaky.app_secret not in letters
    bot_log = logs / f"{bot_id}.log"
    text = wait_until(lambda: (t := bot_log.read_text()) and f"event {event_id} handler" in t
                      and t, 5, "the handler failure in the bot log")
    assert "connected to ws://" in text, "the SDK logs the connection URL"
    assert "ticket=" + MASK in text
    assert not UNMASKED_TICKET.search(text), UNMASKED_TICKET.search(text)
    assert "upstream refused app secret " + MASK in text
    assert leaky.app_secret not in text

    refused.faults(endpointError={"code": 10003,
                                  "msg": f"invalid app_secret {refused.app_secret}"})
    refused_id = fleet.create_bot(refused.app_id, refused.app_secret, refused.url)
    fleet.connect(refused_id)
    status = fleet.wait_state(refused_id, "error")
    assert refused.app_secret not in str(status), "the status API masks it too"
    supervisor_log = logs / "supervisor.log"
    line = wait_until(
        lambda: next((ln for ln in supervisor_log.read_text().splitlines()
                      if refused_id in ln and "invalid app_secret" in ln), None),
        5, "the platform's refusal in the supervisor log")
    assert "invalid app_secret " + MASK in line

    assert fleet.stop() == 0
    for log_file in sorted(logs.iterdir()):
        text = log_file.read_text()
        for secret in (leaky.app_secret, refused.app_secret):
            assert secret not in text, f"{log_file.name} holds an appSecret"
        assert not UNMASKED_TICKET.search(text), f"{log_file.name} holds a ticket"
