"""Idempotency keys (`uuid`) of outbound messages: one per trigger, position and part.

The platform keeps at most one message per `uuid` (max 50 characters) for
about an hour (im-v1/message/create, field `uuid`), so a send repeated after
a crash or a lost response is dropped instead of shown twice. Every key is
derived, never random, from what caused the send:

- `trigger`: the event id for a reply (or a streamed card), the caller's
  uuid for an API send;
- `position`: the reply's index in the handler result (`{"messages": [...]}`);
- `part`: the index of a piece when one reply is split for size.

Position 0 part 0 of an event is the key replies always had (`lf-` + hash of
the event id), so a row spooled by an older version is not answered twice.

An API send without a caller uuid gets one from the server (`new_api_uuid`),
answered to the caller, so a retry after a timeout (504: outcome unknown)
with that uuid cannot send twice.
"""

import hashlib
import uuid

UUID_PREFIX = "lf-"
MAX_UUID_LENGTH = 50


def send_uuid(trigger: str, position: int = 0, part: int = 0) -> str:
    """The uuid of one send caused by `trigger` (`lf-` + 40 hex chars, 43 in all)."""
    key = trigger if position == 0 and part == 0 else f"{trigger}#{position}.{part}"
    return UUID_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def new_api_uuid() -> str:
    """A fresh uuid for an API send whose caller gave none (`lf-api-` + 32 hex chars)."""
    return f"{UUID_PREFIX}api-{uuid.uuid4().hex}"


def api_send_uuid(client_uuid: str | None, position: int = 0, part: int = 0) -> str | None:
    """The uuid of one send of an API request: the caller's own uuid for its first message.

    Without a caller uuid an API send is not idempotent (None); later
    positions and parts get keys derived from the caller's.
    """
    if not client_uuid:
        return None
    if position == 0 and part == 0:
        return client_uuid
    return send_uuid(client_uuid, position, part)
