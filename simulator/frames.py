"""pbbp2 frame building and parsing, so the rest of the simulator never touches protobuf."""

from __future__ import annotations

import base64
import json
from typing import Any

from lark_oapi.ws.pb.pbbp2_pb2 import Frame

CONTROL = 0
DATA = 1


def _add_header(frame: Frame, key: str, value: str) -> None:
    header = frame.headers.add()
    header.key = key
    header.value = value


def header(frame: Frame, key: str) -> str | None:
    """Look a header up by key; frames are small, so a scan beats building a dict."""
    for h in frame.headers:
        if h.key == key:
            return h.value
    return None


def parse(data: bytes) -> Frame:
    """Decode one binary WebSocket message; raises on garbage so the caller can log and skip."""
    frame = Frame()
    frame.ParseFromString(data)
    return frame


def pong(service_id: int, client_config: dict[str, int | float]) -> bytes:
    """A pong carrying the ClientConfig: the SDK applies it at once, which is how tests
    shrink ping and reconnect timings mid-session."""
    frame = Frame(SeqID=0, LogID=0, service=service_id, method=CONTROL)
    _add_header(frame, "type", "pong")
    frame.payload = json.dumps(client_config).encode()
    return frame.SerializeToString()


def event_frames(
    payload: bytes,
    *,
    seq_id: int,
    log_id: int,
    service_id: int,
    message_id: str,
    trace_id: str,
    timestamp_ms: int,
    parts: int = 1,
    frame_type: str = "event",
) -> list[bytes]:
    """DATA frames for one event, split into `parts` byte slices sharing SeqID and
    message_id: the SDK requires every one of these headers or it drops the frame unACKed."""
    parts = max(1, min(parts, max(1, len(payload))))
    size = -(-len(payload) // parts)
    out = []
    for index in range(parts):
        frame = Frame(SeqID=seq_id, LogID=log_id, service=service_id, method=DATA)
        _add_header(frame, "type", frame_type)
        _add_header(frame, "message_id", message_id)
        _add_header(frame, "sum", str(parts))
        _add_header(frame, "seq", str(index))
        _add_header(frame, "trace_id", trace_id)
        _add_header(frame, "timestamp", str(timestamp_ms))
        frame.payload = payload[index * size : (index + 1) * size]
        out.append(frame.SerializeToString())
    return out


def ack_code(frame: Frame) -> int | None:
    """The `code` of an ACK payload; other SDKs add null fields, so parse leniently."""
    try:
        body = json.loads(frame.payload or b"{}")
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def ack_data(frame: Frame) -> Any:
    """The callback answer an ACK carries: `data` is base64 of the handler's JSON (SDK
    ws/client.py); None when there is none or it does not decode."""
    try:
        body = json.loads(frame.payload or b"{}")
        data = body.get("data") if isinstance(body, dict) else None
        return json.loads(base64.b64decode(data)) if data else None
    except ValueError:
        return None
