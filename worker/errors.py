"""The failure kinds the consumer tells apart when it decides to retry."""


class EventError(Exception):
    """Processing one event failed.

    `permanent`: retrying cannot help (dead letter at once).
    `rate_limited`: the platform or a target asked us to slow down, so the
    next attempt waits longer than the normal backoff.
    """

    def __init__(self, message: str, *, permanent: bool = False, rate_limited: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.rate_limited = rate_limited
