"""Decoding untrusted JSON bytes (request bodies) so every bad input is a msgspec error.

msgspec raises UnicodeDecodeError, not DecodeError, for bytes that are not UTF-8 inside
a JSON string (`{"name":"\\xff"}`): a handler that catches only msgspec's errors turns
that into a 500. `decode_json` turns it into a ValidationError naming the string's
JSON path, the way msgspec names a mistyped field.
"""

import json
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_ESCAPED = range(0xDC80, 0xDD00)
"""Where `surrogateescape` puts each byte that is not UTF-8 (PEP 383)."""


def decode_json(raw: bytes, kind: type[T]) -> T:
    """`raw` decoded as `kind` (msgspec.json.decode).

    Raises msgspec.ValidationError (`... - at `$.name``) for a string that is not UTF-8,
    msgspec.DecodeError for malformed JSON and msgspec.ValidationError for a wrong shape.
    """
    try:
        return msgspec.json.decode(raw, type=kind)
    except UnicodeDecodeError as error:
        path = _path_of_bad_text(raw)
        if path is None:
            raise msgspec.DecodeError(f"body is not UTF-8 text: {error.reason} "
                                      f"(byte {error.start})") from None
        raise msgspec.ValidationError(f"Expected UTF-8 text - at `{path}`") from None


def _path_of_bad_text(raw: bytes) -> str | None:
    """The JSON path (`$.a[0].b`) of the first string holding bytes that are not UTF-8,
    or None when the JSON does not parse even so."""
    try:
        value = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    return _find(value, "$")


def _bad(text: str) -> bool:
    return any(ord(char) in _ESCAPED for char in text)


def _find(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if _bad(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _bad(key):
                return f"{path}.{key.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')}"
            found = _find(item, f"{path}.{key}")
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
