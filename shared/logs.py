"""The one logging configuration point, for the supervisor and every worker.

Each process logs to its own rotating file (10 MB x 5). A filter masks every
registered secret and the credentials in connection URLs, so a secret that
slips into a message (an SDK debug line, an exception text) is never written.
"""

import logging
import re
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
MASK = "***"

_URL_CREDENTIALS = re.compile(r"((?:access_key|ticket|token|secret)=)[^&\s'\"]+", re.IGNORECASE)


class SecretRedactor(logging.Filter):
    """Replaces known secret values and URL credentials in every record."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, *secrets: str) -> None:
        self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
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
