"""A short seeded random walk against the real service (tests/soak.py); `make soak` runs longer.

Prints its seed: a failure replays with `python -m tests.soak --seed N --duration 45`.
"""

import os
from pathlib import Path

import pytest

from tests.soak import soak

pytestmark = pytest.mark.timeout(240)


def test_a_random_walk_of_commands_and_faults_keeps_every_invariant(tmp_path: Path) -> None:
    seed = int(os.environ["SOAK_SEED"]) if "SOAK_SEED" in os.environ else None
    walk = soak(duration=20.0, seed=seed, root=tmp_path)
    assert walk.steps > 0
    assert not walk.violations, walk.report()
