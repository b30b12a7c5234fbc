"""Encryption at rest for bot secrets: one Fernet key per data directory.

The key comes from LARKFLEET_SECRET_KEY when set (so it can live in a secret
store rather than next to the database), else from <data>/secret.key, created
with mode 0600 on first use. Losing the key makes the stored secrets
unreadable, which is the point: a copied database alone leaks nothing.
"""

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

logger = logging.getLogger(__name__)

SECRET_KEY_ENV = "LARKFLEET_SECRET_KEY"


class SecretKeyError(Exception):
    """The configured key is malformed or does not open this registry's secrets."""


def load_key(key_file: Path) -> bytes:
    """The Fernet key from the environment, else from `key_file` (created 0600 if missing)."""
    from_env = os.environ.get(SECRET_KEY_ENV, "").strip()
    if from_env:
        return _checked(from_env.encode(), SECRET_KEY_ENV)
    try:
        return _checked(key_file.read_bytes().strip(), str(key_file))
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _checked(key_file.read_bytes().strip(), str(key_file))
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    logger.info("created secret key %s (mode 0600); back it up with the registry", key_file)
    return key


def _checked(key: bytes, source: str) -> bytes:
    try:
        Fernet(key)
    except ValueError as error:
        message = f"{source} is not a valid Fernet key (32 url-safe base64 bytes)"
        raise SecretKeyError(message) from error
    return key


class SecretBox:
    """Encrypts and decrypts short strings; the empty string stays empty (nothing to hide)."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        if not plaintext:
            return ""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, token: str) -> str:
        if not token:
            return ""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as error:
            message = "the secret key does not match the one the registry was written with"
            raise SecretKeyError(message) from error
