"""Every (from, to) pair of the lifecycle: listed moves succeed, all others raise."""

import itertools

import pytest

from supervisor.lifecycle import ALIVE, TRANSITIONS, IllegalTransition, Lifecycle, Phase

PAIRS = list(itertools.product(Phase, Phase))


def lifecycle_in(phase: Phase) -> Lifecycle:
    lifecycle = Lifecycle("bot_test")
    lifecycle.phase = phase
    return lifecycle


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_transition(source: Phase, target: Phase) -> None:
    lifecycle = lifecycle_in(source)
    if target in TRANSITIONS[source]:
        lifecycle.change(target, "test")
        assert lifecycle.phase == target
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.change(target, "test")
        assert lifecycle.phase == source


def test_every_phase_has_a_way_out() -> None:
    assert set(TRANSITIONS) == set(Phase)
    assert all(TRANSITIONS[phase] for phase in Phase)


def test_a_bot_that_stopped_can_always_be_started_again() -> None:
    for phase in (Phase.STOPPED, Phase.BACKOFF, Phase.FATAL):
        assert Phase.STARTING in TRANSITIONS[phase]


def test_only_phases_with_a_process_can_stop() -> None:
    assert {p for p in Phase if Phase.STOPPING in TRANSITIONS[p]} == ALIVE - {Phase.STOPPING}


def test_fatal_is_reached_only_from_a_running_or_starting_worker() -> None:
    assert {p for p in Phase if Phase.FATAL in TRANSITIONS[p]} == {Phase.STARTING, Phase.RUNNING}
