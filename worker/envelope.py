"""The one event envelope handlers receive, whatever schema the platform pushed.

v2 events (`{"schema": "2.0", "header": {...}, "event": {...}}`) pass
unchanged. v1 events (`{"uuid", "token", "ts", "type": "event_callback",
"event": {"type", "app_id", "tenant_key", ...}}`, Feishu's "event subscription
v1" format, still sent for types such as `p2p_chat_create`) are wrapped into
the same shape with `"schema": "1.0"`: `header.event_id` is the v1 `uuid`,
`header.event_type` the v1 `event.type`, and `event` is the v1 event unchanged.
"""

from typing import Any

import msgspec

V1_SCHEMA = "1.0"


def to_v2(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """(envelope, its JSON bytes) for a pushed payload; raises ValueError if it is no event."""
    try:
        body = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(body, dict):
        raise ValueError("the payload is not a JSON object")
    if isinstance(body.get("header"), dict):
        return body, payload
    event = body.get("event")
    if not body.get("uuid") or not isinstance(event, dict):
        raise ValueError("neither a v2 header nor a v1 uuid and event")
    header = {
        "event_id": str(body["uuid"]),
        "event_type": str(event.get("type", "")),
        "create_time": _millis(body.get("ts")),
        "token": str(body.get("token", "")),
        "app_id": str(event.get("app_id", "")),
        "tenant_key": str(event.get("tenant_key", "")),
    }
    envelope = {"schema": V1_SCHEMA, "header": header, "event": event}
    return envelope, msgspec.json.encode(envelope)


def header_of(envelope: dict[str, Any]) -> tuple[str, str]:
    """(event_id, event_type) of an envelope from `to_v2`."""
    header = envelope.get("header") or {}
    return str(header.get("event_id", "")), str(header.get("event_type", ""))


def _millis(ts: object) -> str:
    """v1 `ts` is seconds with a fraction ("1502199207.7171419"); v2 uses milliseconds."""
    try:
        return str(int(float(str(ts)) * 1000))
    except ValueError:
        return ""
