"""Every (from, to) pair of the lifecycle against the table written here from the docs.

The expected moves are written in this test, not read from the product: a changed table in
supervisor/lifecycle.py fails here until the docs and this table agree.
"""

import itertools
import logging

import pytest

from supervisor.lifecycle import ALIVE, TRANSITIONS, IllegalTransition, Lifecycle, Phase

EXPECTED: dict[str, set[str]] = {
    "stopped": {"starting", "fatal"},
    "starting": {"running", "backoff", "fatal", "stopping"},
    "running": {"backoff", "fatal", "stopping"},
    "backoff": {"starting", "stopped", "fatal"},
    "stopping": {"stopped", "fatal"},
    "fatal": {"starting", "stopped"},
}
"""Forked -> Hello -> running; a transient end -> backoff, a permanent one -> fatal; stop
from any live phase; a restart (config change, connect during stop) is stopping -> stopped
-> starting; fatal from every phase, where a bug contained in one bot's step parks it."""

PAIRS = list(itertools.product(Phase, Phase))


def lifecycle_in(phase: Phase) -> Lifecycle:
    lifecycle = Lifecycle("bot_test")
    lifecycle.phase = phase
    return lifecycle


def test_the_table_is_the_documented_one() -> None:
    assert {str(p): {str(t) for t in targets} for p, targets in TRANSITIONS.items()} == EXPECTED
    assert {str(p) for p in ALIVE} == {"starting", "running", "stopping"}


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_transition(source: Phase, target: Phase) -> None:
    lifecycle = lifecycle_in(source)
    if str(target) in EXPECTED[str(source)]:
        assert lifecycle.can(target)
        lifecycle.change(target, "test")
        assert lifecycle.phase == target
    else:
        assert not lifecycle.can(target)
        with pytest.raises(IllegalTransition, match=f"bot_test: {source} -> {target} \\(test\\)"):
            lifecycle.change(target, "test")
        assert lifecycle.phase == source


def test_a_new_lifecycle_is_stopped() -> None:
    assert Lifecycle("bot_new").phase == Phase.STOPPED


def test_a_change_is_logged_and_announced(caplog: pytest.LogCaptureFixture) -> None:
    lifecycle = Lifecycle("bot_seen")
    heard: list[str] = []
    lifecycle.listener = heard.append
    with caplog.at_level(logging.INFO, logger="supervisor.lifecycle"):
        lifecycle.change(Phase.STARTING, "connect asked")
        lifecycle.change(Phase.RUNNING, "hello")
    assert caplog.messages == ["bot bot_seen: stopped -> starting (connect asked)",
                               "bot bot_seen: starting -> running (hello)"]
    assert heard == ["connect asked", "hello"]
