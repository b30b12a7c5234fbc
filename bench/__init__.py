"""Benchmarks: larkfleet against the bare SDK, side by side, written to docs/benchmarks.md."""
