"""The supervisor's tunables, with the defaults architecture.md names.

Each can be set by an environment variable `LARKFLEET_<NAME>` (seconds), which
is how tests shrink timeouts without a different code path.
"""

import os
from dataclasses import dataclass, field, fields

from supervisor.backoff import BackoffPolicy


@dataclass(frozen=True)
class SupervisorSettings:
    heartbeat_timeout: float = 5.0
    """No message from a running worker for this long: SIGKILL and restart."""
    start_timeout: float = 30.0
    """Fork to Hello: long, so 200 workers booting on 2 cores are not killed for slowness."""
    stop_grace: float = 10.0
    """Stop to SIGKILL, for one worker and for the whole fleet at shutdown."""
    tick: float = 0.25
    """How often deadlines are checked and workers pinged."""
    ping_interval: float = 1.0
    request_timeout: float = 15.0
    """How long an API call waits for a worker's answer (webhook delivery, send)."""
    endpoint_timeout: float = 10.0
    """Bound on the SDK's endpoint discovery, which has no timeout of its own."""
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    worker_log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "SupervisorSettings":
        """Defaults overridden by LARKFLEET_HEARTBEAT_TIMEOUT, LARKFLEET_STOP_GRACE, ..."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"LARKFLEET_{f.name.upper()}")
            if raw is None or f.name == "backoff":
                continue
            values[f.name] = raw if f.name == "worker_log_level" else float(raw)
        policy = {
            f.name: float(env[f"LARKFLEET_BACKOFF_{f.name.upper()}"])
            for f in fields(BackoffPolicy)
            if f"LARKFLEET_BACKOFF_{f.name.upper()}" in env
        }
        if "flap_count" in policy:
            policy["flap_count"] = int(policy["flap_count"])
        return cls(backoff=BackoffPolicy(**policy), **values)  # type: ignore[arg-type]
