"""Fixture modules shared by the test suite, one per area."""

pytest_plugins = ["tests.fixtures.sim", "tests.fixtures.service", "tests.fixtures.postgres",
                  "tests.fixtures.field", "tests.fixtures.bench",
                  "tests.fixtures.events"]
