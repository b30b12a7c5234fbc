"""The two clocks, how names say which one a time is on, and the API's time format.

Every time held as a number names its clock by suffix:
- `_mono`: `time.monotonic()` seconds, for deadlines, timeouts and durations; never
  shown, never stored, meaningless in another process.
- `_epoch`: wall-clock seconds since 1970 (`time.time()`), for what is shown or stored.
- `_s`: a duration in seconds (an interval, a delay), on no clock.
`_at` names only what the API shows or a database keeps as a date (architecture.md's
`connectedAt`, `nextRetryAt`, `expiresAt`; SQL columns such as the spool's
`next_attempt_at`, wall clock): those are ISO-8601 strings, `datetime`s or stored columns.
"""

from datetime import UTC, datetime


def iso(epoch: float | None) -> str | None:
    """Wall-clock seconds as the API's time: ISO-8601 UTC in milliseconds, `Z` suffixed
    (`2026-12-01T03:12:22.123Z`); None stays None (JSON null)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class IsoMemo:
    """`iso` of one time that is read far more often than it changes (a bot's last
    heartbeat, its connect time): formatting is most of what a status record costs
    (~2 us of ~6 us a bot), and `GET /api/feishu/ws/status` builds one per bot."""

    __slots__ = ("_epoch", "_text")

    def __init__(self) -> None:
        self._epoch: float | None = None
        self._text: str | None = None

    def __call__(self, epoch: float | None) -> str | None:
        """`iso(epoch)`, formatted again only when `epoch` differs from the last call's."""
        if epoch != self._epoch:
            self._epoch, self._text = epoch, iso(epoch)
        return self._text
