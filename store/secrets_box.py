"""Encryption at rest for bot secrets: one Fernet key per data directory (two while rotating).

The key comes from LARKFLEET_SECRET_KEY when set (so it can live in a secret
store rather than next to the database), else from <data>/secret.key, created
with mode 0600 on first use. Losing the key makes the stored secrets
unreadable, which is the point: a copied database alone leaks nothing.
"""

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

logger = logging.getLogger(__name__)

SECRET_KEY_ENV = "LARKFLEET_SECRET_KEY"


class SecretKeyError(Exception):
    """The configured key is malformed or does not open this registry's secrets."""


def load_keys(key_file: Path) -> list[bytes]:
    """The Fernet keys, newest (the one that encrypts) first; every one decrypts.

    From LARKFLEET_SECRET_KEY (comma-separated) when set, else one key per
    line of `key_file`, created 0600 with one new key when missing. Two keys
    are there only during a rotation (`larkfleet rotate-key`, docs/operations.md).
    Raises SecretKeyError for a malformed key.
    """
    from_env = os.environ.get(SECRET_KEY_ENV, "").strip()
    if from_env:
        return [_checked(k.strip().encode(), SECRET_KEY_ENV)
                for k in from_env.split(",") if k.strip()]
    try:
        return _read(key_file)
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(key_file)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    logger.info("created secret key %s (mode 0600); back it up with the registry", key_file)
    return [key]


def load_key(key_file: Path) -> bytes:
    """The key that encrypts (see `load_keys`)."""
    return load_keys(key_file)[0]


def write_keys(key_file: Path, keys: list[bytes]) -> None:
    """Replace `key_file` atomically (0600) with `keys`, one per line, the encrypting one first."""
    tmp = key_file.with_name(key_file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"".join(key + b"\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, key_file)


def _read(key_file: Path) -> list[bytes]:
    keys = [_checked(line.strip(), str(key_file))
            for line in key_file.read_bytes().splitlines() if line.strip()]
    if not keys:
        raise SecretKeyError(f"{key_file} holds no key")
    return keys


def _checked(key: bytes, source: str) -> bytes:
    try:
        Fernet(key)
    except ValueError as error:
        message = f"{source} is not a valid Fernet key (32 url-safe base64 bytes)"
        raise SecretKeyError(message) from error
    return key


class SecretBox:
    """Encrypts and decrypts short strings; the empty string stays empty (nothing to hide).

    Built `from_source`, it follows the key file: a seal first checks whether
    the file changed (one stat) and a value no loaded key opens makes it look
    again, so a running service picks up `larkfleet rotate-key`'s new key
    without a restart (MultiFernet: the first key encrypts, every key decrypts).
    """

    def __init__(self, key: bytes | list[bytes], source: Path | None = None) -> None:
        self._source = source
        self._stamp = self._current_stamp()
        self._use(key if isinstance(key, list) else [key])

    @classmethod
    def from_source(cls, key_file: Path) -> "SecretBox":
        """The box for a data directory's key (LARKFLEET_SECRET_KEY or `key_file`)."""
        return cls(load_keys(key_file), key_file)

    def _use(self, keys: list[bytes]) -> None:
        self.keys = keys
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def _current_stamp(self) -> object:
        if self._source is None:
            return None
        from_env = os.environ.get(SECRET_KEY_ENV, "").strip()
        if from_env:
            return from_env
        try:
            info = self._source.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def refresh(self) -> bool:
        """Reload the keys if their source changed; returns whether it did."""
        stamp = self._current_stamp()
        if self._source is None or stamp == self._stamp:
            return False
        self._use(load_keys(self._source))
        self._stamp = stamp
        logger.info("secret keys reloaded (%d key(s))", len(self.keys))
        return True

    def seal(self, plaintext: str) -> str:
        if not plaintext:
            return ""
        self.refresh()
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, token: str) -> str:
        if not token:
            return ""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            if not self.refresh():
                message = "the secret key does not match the one the registry was written with"
                raise SecretKeyError(message) from None
        return self.open(token)
