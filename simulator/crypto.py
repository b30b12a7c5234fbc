"""Feishu webhook encryption and signing. The SDK only decrypts and verifies, so the
platform side has to be written here."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def encrypt(plain: bytes, encrypt_key: str) -> str:
    """AES-256-CBC, key sha256(encrypt_key), random IV prepended, PKCS#7, base64."""
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def sign(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """Plain sha256 hex of timestamp+nonce+key then the raw body (not an HMAC)."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()
