"""What a TCP port or a service URL setting takes, for every flag and variable naming one."""

import argparse
import urllib.parse

PORTS = range(0, 65536)
"""0-65535; 0 binds any free port (the service then says which)."""

PORT_EXPECTED = "a port from 0 to 65535 (0: any free port)"


def port_number(text: str) -> int:
    """`text` as a port (argparse `type=`); raises ArgumentTypeError otherwise, which
    argparse reports as a usage error (exit 2) naming the flag, instead of a kernel that
    takes the port modulo 65536 or an "unknown host" for a negative one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in PORTS:
        raise argparse.ArgumentTypeError(f"{text!r} is not {PORT_EXPECTED}")
    return value


SERVICE_URL_EXPECTED = "http(s)://host[:port] with a port 0-65535"


def is_service_url(url: str) -> bool:
    """Whether `url` is SERVICE_URL_EXPECTED (a larkfleet API's base URL): checked where it
    is read, so a typo is one line naming the setting instead of a traceback from urllib."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError when not a port 0-65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
