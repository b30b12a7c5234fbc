"""shared/logs.py as a unit: what the redactor masks and how every process's logging is set up.

tests/test_logs.py has the per-owner checks; tests/test_log_redaction.py shows the masking
through the real service's files; these are fast checks mutation testing runs against.
"""

import logging
import os
import sys
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from shared import logs
from shared.logs import BACKUPS, LOG_FORMAT, MASK, MAX_BYTES, SecretRedactor, configure_logging


@pytest.fixture
def redactor() -> SecretRedactor:
    fresh = SecretRedactor()
    fresh.add("app-secret-123", "enc-key-456")
    return fresh


def test_known_secrets_are_masked_wherever_they_appear(redactor: SecretRedactor) -> None:
    assert redactor.redact("secret app-secret-123 and enc-key-456!") == (
        f"secret {MASK} and {MASK}!")
    assert redactor.redact("app-secret-123app-secret-123") == MASK + MASK


def test_empty_and_short_values_are_not_registered() -> None:
    redactor = SecretRedactor()
    redactor.add("", "abc", "abcd")
    assert redactor.redact("abc abcd a") == f"abc {MASK} a", "4 characters and more only"


@pytest.mark.parametrize("name", ["ticket", "access_key", "token", "secret", "TICKET", "Token"])
def test_url_credentials_are_masked_up_to_the_next_separator(
    redactor: SecretRedactor, name: str
) -> None:
    url = f"ws://h/ws?device_id=7&{name}=abc123&service_id=9"
    assert redactor.redact(url) == f"ws://h/ws?device_id=7&{name}={MASK}&service_id=9"
    for end in (" next", "'", '"'):
        assert redactor.redact(f"{name}=v4lue{end}") == f"{name}={MASK}{end}"


def test_other_parameters_are_kept(redactor: SecretRedactor) -> None:
    text = "ws://h/ws?device_id=7&service_id=9&tickets_left=3"
    assert redactor.redact(text) == text


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom with app-secret-123")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.ERROR, __file__, 1, message, args, exc_info)


def test_filter_masks_the_formatted_message_and_keeps_the_record(
    redactor: SecretRedactor,
) -> None:
    item = record("connected to %s with %s", "ws://h?ticket=t1", "enc-key-456")
    assert redactor.filter(item) is True
    assert (item.msg, item.args) == (f"connected to ws://h?ticket={MASK} with {MASK}", None)
    assert item.getMessage() == item.msg


def test_filter_masks_the_traceback_text(redactor: SecretRedactor) -> None:
    item = record("handler raised", exc=True)
    assert redactor.filter(item) is True
    assert item.exc_text is not None and "RuntimeError: boom with " + MASK in item.exc_text
    assert "app-secret-123" not in item.exc_text
    already = record("again", exc=True)
    already.exc_text = "Traceback: token=abc"
    redactor.filter(already)
    assert already.exc_text == f"Traceback: token={MASK}"


@pytest.fixture
def clean_root() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_configure_logging_writes_one_rotating_masked_file(
    tmp_path: Path, clean_root: None
) -> None:
    log_file = tmp_path / "logs" / "bot.log"
    logs.redactor.add("configured-secret-789")
    configure_logging(log_file, "DEBUG", stderr=False)
    configure_logging(log_file, "DEBUG", stderr=False)
    root = logging.getLogger()
    [handler] = root.handlers
    assert isinstance(handler, RotatingFileHandler)
    assert (handler.maxBytes, handler.backupCount) == (MAX_BYTES, BACKUPS) == (10 * 2**20, 5)
    assert handler.formatter is not None and handler.formatter._fmt == LOG_FORMAT
    assert logs.redactor in handler.filters
    assert root.level == logging.DEBUG

    sdk = logging.getLogger("Lark")
    assert sdk.handlers == [] and sdk.propagate and sdk.level == logging.DEBUG
    sdk.debug("sdk line with configured-secret-789 and ticket=t2")
    logging.getLogger("worker.x").info("ours")
    handler.flush()
    lines = log_file.read_text().splitlines()
    assert [line.split(" ", 3)[2:] for line in lines] == [
        ["DEBUG", f"Lark: sdk line with {MASK} and ticket={MASK}"],
        ["INFO", "worker.x: ours"],
    ]


def test_configure_logging_to_stderr_only(clean_root: None) -> None:
    configure_logging(None, "WARNING")
    [handler] = logging.getLogger().handlers
    assert type(handler) is logging.StreamHandler and handler.stream is sys.stderr
    assert logs.redactor in handler.filters
    assert logging.getLogger().level == logging.WARNING
    configure_logging(None, "INFO", stderr=False)
    assert logging.getLogger().handlers == []


def test_a_secret_that_starts_another_does_not_cut_it() -> None:
    redactor = SecretRedactor()
    redactor.set("bot:1", "abcd")
    redactor.set("bot:2", "abcdefgh")
    assert redactor.redact("abcdefgh abcd") == f"{MASK} {MASK}"


def test_forever_secrets_accumulate_and_owners_can_be_dropped_unknown() -> None:
    redactor = SecretRedactor()
    assert redactor.redact("plain token=t1") == f"plain token={MASK}", "no secrets yet"
    redactor.add("first-secret")
    redactor.add("second-secret")
    assert redactor.redact("first-secret second-secret") == f"{MASK} {MASK}"
    redactor.drop("never-known")
    redactor.set("bot:1", "bot-secret")
    redactor.drop("bot:1")
    assert redactor.secrets() == {"first-secret", "second-secret"}
    emptied = SecretRedactor()
    emptied.set("bot:1", "only-one")
    emptied.drop("bot:1")
    assert emptied.redact("nothing to hide") == "nothing to hide"


def test_configure_logging_creates_the_log_directory_and_takes_over_the_sdk_logger(
    tmp_path: Path, clean_root: None
) -> None:
    sdk = logging.getLogger("Lark")
    own = logging.StreamHandler(sys.stdout)
    sdk.addHandler(own)
    sdk.propagate = False
    log_file = tmp_path / "deep" / "er" / "bot.log"
    configure_logging(log_file, "INFO", stderr=False)
    assert log_file.parent.is_dir()
    assert own not in sdk.handlers and sdk.propagate


def test_the_rotating_handler_rolls_over_as_the_stdlibs_does(tmp_path: Path) -> None:
    """SizeRotatingFileHandler writes the same files as the stdlib's RotatingFileHandler
    for the same ASCII records, formatting each record once."""
    records = [logging.LogRecord("x", logging.INFO, __file__, 1, f"ascii line {i:03d}", None,
                                 None) for i in range(60)]
    formats = []

    class Counting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            formats.append(record)
            return super().format(record)

    for name, cls in (("ours", logs.SizeRotatingFileHandler), ("stdlib", RotatingFileHandler)):
        (tmp_path / name).mkdir()
        handler = cls(tmp_path / name / "bot.log", maxBytes=200, backupCount=3, delay=True)
        handler.setFormatter(Counting("%(message)s"))
        for record in records:
            handler.handle(record)
        handler.close()
        if name == "ours":
            assert len(formats) == len(records)  # once each (the stdlib: twice)
    for suffix in ("", ".1", ".2", ".3"):
        ours = (tmp_path / "ours" / f"bot.log{suffix}").read_bytes()
        assert ours == (tmp_path / "stdlib" / f"bot.log{suffix}").read_bytes(), suffix
        assert 0 < len(ours) < 200
    assert not (tmp_path / "ours" / "bot.log.4").exists()


def test_the_rotating_handler_counts_bytes_and_never_loops(tmp_path: Path) -> None:
    """CJK lines (3 bytes a character) keep every file under the limit in bytes, where
    the stdlib counts characters; a line over the limit is written alone; without
    backups, or on a file that is not regular, nothing rolls over (and nothing recurses:
    a first version re-entered its rollover until RecursionError with no backups)."""
    def write(path: Path | str, texts: list[str], backups: int) -> None:
        handler = logs.SizeRotatingFileHandler(path, maxBytes=120, backupCount=backups,
                                               encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        for text in texts:
            handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, text, None, None))
        handler.close()

    write(tmp_path / "cjk.log", [f"飞书机器人消息 {i:02d}" for i in range(30)], backups=40)
    files = sorted(tmp_path.glob("cjk.log*"))
    assert len(files) > 5 and all(0 < f.stat().st_size < 120 for f in files)
    write(tmp_path / "long.log", ["x" * 300, "short"], backups=2)
    assert (tmp_path / "long.log.1").read_text() == "x" * 300 + "\n"
    assert (tmp_path / "long.log").read_text() == "short\n"
    write(tmp_path / "none.log", ["y" * 50] * 10, backups=0)
    assert (tmp_path / "none.log").stat().st_size == 510
    assert sorted(p.name for p in tmp_path.glob("none.log*")) == ["none.log"]
    write(os.devnull, ["z" * 50] * 10, backups=2)
