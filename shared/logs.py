"""The one logging configuration point, for the supervisor and every worker.

Each process logs to its own rotating file (10 MB x 5). A filter masks every
registered secret and the credentials in connection URLs, so a secret that
slips into a message (an SDK debug line, an exception text) is never written.
"""

import logging
import re
import sys
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
MASK = "***"

_FOREVER = ""
"""The owner of the secrets `add` registers."""
MIN_SECRET_LEN = 4
"""Shorter values would mask ordinary words."""

_URL_CREDENTIALS = re.compile(r"((?:access_key|ticket|token|secret)=)[^&\s'\"]+", re.IGNORECASE)


class SecretRedactor(logging.Filter):
    """Replaces known secret values and URL credentials in every record.

    Secrets are kept per owner (a bot, a token), so a changed or deleted bot's
    old secrets leave the set instead of piling up for the life of the process;
    each change rebuilds one compiled pattern (longest secret first, so one
    that contains another is masked whole), and a record costs one regex pass
    however many bots the process knows.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._owned: dict[str, frozenset[str]] = {}
        self._pattern: re.Pattern[str] | None = None

    def add(self, *secrets: str) -> None:
        """Secrets that stay for the life of the process (the admin token, a DB password)."""
        with self._lock:
            self._set_locked(_FOREVER, self._owned.get(_FOREVER, frozenset()) | _valid(secrets))

    def set(self, owner: str, *secrets: str) -> None:
        """`owner`'s secrets are now exactly `secrets` (its old ones are dropped)."""
        with self._lock:
            self._set_locked(owner, _valid(secrets))

    def drop(self, owner: str) -> None:
        """Forget `owner`'s secrets (a deleted bot, a revoked token)."""
        with self._lock:
            self._set_locked(owner, frozenset())

    def secrets(self) -> frozenset[str]:
        """Every secret currently masked."""
        return frozenset().union(*self._owned.values())

    def _set_locked(self, owner: str, secrets: frozenset[str]) -> None:
        if self._owned.get(owner, frozenset()) == secrets:
            return
        if secrets:
            self._owned[owner] = secrets
        else:
            self._owned.pop(owner, None)
        ordered = sorted(self.secrets(), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        return _URL_CREDENTIALS.sub(rf"\1{MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def _valid(secrets: tuple[str, ...]) -> frozenset[str]:
    return frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)


redactor = SecretRedactor()


def configure_logging(log_file: Path | None, level: str = "INFO", stderr: bool = True) -> None:
    """Route every logger, the SDK's "Lark" logger included, through our handlers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(RotatingFileHandler(log_file, maxBytes=MAX_BYTES, backupCount=BACKUPS))
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    formatter = logging.Formatter(LOG_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        root.addHandler(handler)
    root.setLevel(level)

    sdk = logging.getLogger("Lark")
    for handler in list(sdk.handlers):
        sdk.removeHandler(handler)
    sdk.propagate = True
    sdk.setLevel(level)
