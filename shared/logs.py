"""The one logging configuration point, for the supervisor and every worker.

Each process logs to its own rotating file (10 MB x 5). A filter masks every
registered secret and the credentials in connection URLs, so a secret that
slips into a message (an SDK debug line, an exception text) is never written.
"""

import logging
import os
import re
import stat
import sys
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path

import ahocorasick

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
    old secrets leave the set instead of piling up for the life of the process.
    They are matched with one Aho-Corasick automaton (pyahocorasick): a record
    costs one pass however many secrets the process knows, the longest match
    wins (a secret that contains another is masked whole), and a change rebuilds
    the automaton in C in about a millisecond for 3,000 secrets. (One regex
    alternation of every secret, the earlier design, cost ~120 ms of pure-Python
    pattern parsing per change at 1,000 bots: creating bots went quadratic.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._owned: dict[str, frozenset[str]] = {}
        self._automaton: ahocorasick.Automaton | None = None

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
        self._automaton = _automaton(self.secrets())

    def redact(self, text: str) -> str:
        automaton = self._automaton  # swapped whole on change, so no lock on the hot path
        if automaton is not None:
            text = _mask(automaton, text)
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


def _automaton(secrets: frozenset[str]) -> "ahocorasick.Automaton | None":
    """A matcher of `secrets` whose value is each secret's length; None when empty."""
    if not secrets:
        return None
    automaton = ahocorasick.Automaton()
    for secret in secrets:
        automaton.add_word(secret, len(secret))
    automaton.make_automaton()
    return automaton


def _mask(automaton: "ahocorasick.Automaton", text: str) -> str:
    """`text` with every leftmost-longest, non-overlapping match replaced by MASK."""
    pieces, start = [], 0
    for end, length in automaton.iter_long(text):
        pieces.append(text[start:end + 1 - length])
        pieces.append(MASK)
        start = end + 1
    if not pieces:
        return text
    pieces.append(text[start:])
    return "".join(pieces)


def _valid(secrets: tuple[str, ...]) -> frozenset[str]:
    return frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)


redactor = SecretRedactor()


class SizeRotatingFileHandler(RotatingFileHandler):
    """The stdlib's RotatingFileHandler (same file names, size limit and backups), at about
    half the CPU per record.

    Python 3.12's `shouldRollover` formats every record a second time, to measure it, and
    stats the file twice (bpo-45401: only regular files roll over) before each write. A
    worker writes a line per event, so that was about a tenth of an event's CPU on a slow
    host (bench/NOTES.md, "Fourth look"). Here each record is formatted once, and the
    size is kept from the stream: read with fstat when the file is opened, then counted in
    the stream's encoded bytes as lines are written. Rollover is the stdlib's own
    `doRollover`. Where the stdlib differs: it adds the line's characters (not bytes) to the
    file's position, so a file of CJK text can grow past the limit; it rolls an empty file
    over for a line longer than the limit, which here is written alone into the file
    instead; and it reads the position from the file, so it sees a file another process
    truncated (copytruncate) at once, where this count does at the next open. As in the
    stdlib's documentation, nothing rolls over without backups, nor a file that is not
    regular (/dev/null).
    """

    _size: int | None = None
    """Bytes in the open file; None until read from it (after an open or a rollover)."""
    _regular = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
                self._size = None
            held = self._size if self._size is not None else self._measure()
            size = len(line.encode(self.stream.encoding or "utf-8", "replace"))
            if (self.maxBytes > 0 and self.backupCount > 0 and self._regular
                    and held > 0 and held + size >= self.maxBytes):
                self.doRollover()
                if self.stream is None:  # a delaying handler reopens only on a write
                    self.stream = self._open()
                held = self._measure()
            self.stream.write(line)
            self.flush()
            self._size = held + size
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _measure(self) -> int:
        """The open file's size in bytes, read from it (and whether it is regular)."""
        status = os.fstat(self.stream.fileno())
        self._size, self._regular = status.st_size, stat.S_ISREG(status.st_mode)
        return self._size


def configure_logging(log_file: Path | None, level: str = "INFO", stderr: bool = True) -> None:
    """Route every logger, the SDK's "Lark" logger included, through our handlers.

    LOG_FORMAT uses no thread or process fields, so the record does not collect them (the
    logging HOWTO's "Optimization" switches). The caller's frame is still looked up:
    `stack_info=True` (aiohttp's warnings use it) needs it."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            SizeRotatingFileHandler(log_file, maxBytes=MAX_BYTES, backupCount=BACKUPS))
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
