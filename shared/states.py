"""Connection states as the API reports them (architecture.md, "Connection states")."""

from enum import StrEnum


class ConnState(StrEnum):
    """The `state` field of a bot's status.

    Workers report what they observe (CONNECTING, CONNECTED, WEBHOOK, and
    RECONNECTING or ERROR just before they exit); the API's value comes from
    the supervisor, which derives DISCONNECTED, RECONNECTING and ERROR from
    its own lifecycle of the worker.
    """

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ERROR = "error"
    WEBHOOK = "webhook"
