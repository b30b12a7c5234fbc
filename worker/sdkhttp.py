"""One keep-alive HTTP connection pool for every call the SDK makes from this worker.

lark_oapi sends each OpenAPI call (tokens, replies, uploads) with the bare
`requests.request(...)` (core/http/transport.py `Transport.execute`) and the
endpoint discovery with `requests.post(...)` (ws/client.py `_get_conn_url`):
each call builds a new `requests.Session`, opens a new TCP connection, does a
new TLS handshake (loading the CA bundle again) and closes it. Measured
against the simulator over TLS, that was most of what a reply cost beyond
the handler (bench/NOTES.md). Here both modules' `requests` name is pointed at
a shim whose `request`/`post` go through one `requests.Session` per process,
so the connection opened by the endpoint discovery is the one the token fetch
and the replies reuse.

`Session.request` merges the environment exactly as `requests.request` does
(trust_env: HTTPS_PROXY/NO_PROXY set by worker/proxy.py, REQUESTS_CA_BUNDLE /
SSL_CERT_FILE), and urllib3 drops a pooled connection the server has closed
before reusing it. The session is made in the worker, after the fork: a pool
inherited from the zygote would share sockets between processes.
"""

from typing import Any

import lark_oapi.core.http.transport as sdk_transport
import lark_oapi.ws.client as sdk_ws_client
import requests

POOL_SIZE = 8
"""Connections kept per host: the sender threads (worker/replies.py) plus discovery."""


class PooledRequests:
    """What the SDK modules call as `requests`: the same functions on one Session."""

    def __init__(self) -> None:
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, url, **kwargs)

    def post(self, url: str, data: Any = None, json: Any = None,
             **kwargs: Any) -> requests.Response:
        return self.session.request("POST", url, data=data, json=json, **kwargs)

    def close(self) -> None:
        self.session.close()

    def __getattr__(self, name: str) -> Any:
        """Anything else the SDK modules use of `requests` (exceptions, ...), unchanged."""
        return getattr(requests, name)


def install() -> PooledRequests:
    """Route this process's SDK HTTP calls through one pooled session; returns it.

    Call once per worker process, after the fork (worker/main.py).
    """
    pooled = PooledRequests()
    sdk_transport.requests = pooled  # type: ignore[assignment]
    sdk_ws_client.requests = pooled  # type: ignore[assignment]
    return pooled
