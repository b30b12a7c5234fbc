"""What a TCP port setting takes, for every flag and variable that names one."""

import argparse

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
