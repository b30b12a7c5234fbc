"""Which proxy the worker's platform connections use: WebSocket and HTTP alike.

The SDK makes its HTTP calls (endpoint discovery, tokens, sends) with
`requests`, which follows HTTPS_PROXY/HTTP_PROXY/NO_PROXY, but opens the
WebSocket with `proxy=None` (lark_oapi ws/client.py `_ws_connect_kwargs`:
"preserve that behavior"), so behind an egress proxy a bot never connects
(larksuite/oapi-sdk-python #143, #146). Here both follow one setting:

- none (the default): the standard variables as the service was started with;
- `direct`: no proxy at all for this worker;
- an HTTP proxy URL (`http://` or `https://`, optionally with credentials): that proxy.

A worker is one process per bot, so the setting is applied to the worker's
own environment, which `requests` and websockets' proxy discovery
(`websockets.uri.get_proxy`: getproxies() and proxy_bypass(), so NO_PROXY
too) both read. aiohttp, used by forward and openai handlers, does not read
the environment (trust_env is off), so handler targets are reached directly.
"""

import os
from collections.abc import MutableMapping
from urllib.parse import urlsplit

import lark_oapi.ws.client as sdk_client

from shared.botconfig import mask_proxy as masked
from shared.logs import redactor
from worker.connection import KEEPALIVE_S

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
DIRECT = "direct"

_sdk_ws_connect_kwargs = sdk_client._ws_connect_kwargs


def _ws_connect_kwargs(connection_headers=None):
    """The SDK's websockets.connect arguments, with proxy discovery turned back on and
    the keepalive period of worker/connection.py (KEEPALIVE_S) instead of websockets'."""
    kwargs = _sdk_ws_connect_kwargs(connection_headers)
    if "proxy" in kwargs:
        kwargs["proxy"] = True
    kwargs["ping_interval"] = KEEPALIVE_S
    return kwargs


def apply(setting: str | None, environ: MutableMapping[str, str] | None = None) -> str:
    """Route this process's platform connections by `setting`; returns it for the log
    (credentials in a proxy URL masked, and registered with the log redactor)."""
    env = os.environ if environ is None else environ
    sdk_client._ws_connect_kwargs = _ws_connect_kwargs
    if not setting:
        current = next((env[n] for n in _names() if env.get(n)), "")
        return f"from the environment ({masked(current)})" if current else "none (direct)"
    for name in _names():
        env.pop(name, None)
    if setting == DIRECT:
        env["NO_PROXY"] = env["no_proxy"] = "*"
        return "none (direct)"
    for name in PROXY_VARIABLES[:2]:
        env[name] = env[name.lower()] = setting
    password = urlsplit(setting).password
    if password:
        redactor.add(password)
    return masked(setting)


def _names() -> list[str]:
    return [v for name in PROXY_VARIABLES for v in (name, name.lower())]
