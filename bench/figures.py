"""One row of the results: larkfleet's value, the bare SDK's, their ratio and the target."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """`fleet`/`bare` are display strings; `ratio` is fleet / bare of the headline number
    (None when the bare SDK has no counterpart); `met` is None when there is no target."""

    name: str
    scale: str
    fleet: str
    bare: str
    ratio: float | None
    target: str
    met: bool | None
    key: str
    """Stable identifier, so the quick test can check that every figure was produced."""
    plain: str = "-"
    """larkfleet's value in the same run without TLS (`fleet` is with TLS), or "-"."""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def pair(p50: float, p99: float) -> str:
    """A p50/p99 pair of seconds for display."""
    return f"{ms(p50)} / {ms(p99)}"


def ratio(fleet: float, bare: float) -> float | None:
    return fleet / bare if bare > 0 else None
