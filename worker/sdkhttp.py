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

The session merges the environment as `requests.request` does (trust_env:
HTTPS_PROXY/NO_PROXY set by worker/proxy.py, REQUESTS_CA_BUNDLE / SSL_CERT_FILE),
once per origin (`EnvOnceSession`), and urllib3 drops a pooled connection the
server has closed before reusing it. The session is made in the worker, after the fork: a pool
inherited from the zygote would share sockets between processes.
"""

import functools
import os
import ssl
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import lark_oapi.core.http.transport as sdk_transport
import lark_oapi.ws.client as sdk_ws_client
import requests
import websockets
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from worker import tlscontexts

POOL_SIZE = 8
"""Connections kept per host: the sender threads (worker/replies.py) plus discovery."""


class EnvOnceSession(requests.Session):
    """A Session that reads the environment once per origin instead of on every request.

    requests merges the environment into each request (requests/sessions.py
    `merge_environment_settings`): the proxy variables, found by walking all of
    os.environ (urllib.request `getproxies_environment`) and checked against NO_PROXY,
    then REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE. That was ~15 % of the CPU of a keep-alive
    request to the platform (cProfile; bench/NOTES.md, "Fourth look"). A worker's environment is set
    once, at its start, before any request (worker/proxy.py), so the merge's result
    for an origin never changes; it is kept per (scheme, host:port) and the settings
    passed in. A call that brings its own proxies, or None (which requests leaves
    without the environment's), is merged as requests does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._merged: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        if proxies is None or proxies or not self.trust_env:  # as requests merges them
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url.decode() if isinstance(url, bytes) else str(url))
        key = (parts.scheme.lower(), parts.netloc.lower(), stream, verify,
               tuple(cert) if isinstance(cert, list) else cert)
        merged = self._merged.get(key)
        if merged is None:
            merged = super().merge_environment_settings(url, {}, stream, verify, cert)
            self._merged[key] = merged
        return {**merged, "proxies": dict(merged["proxies"])}


class PooledRequests:
    """What the SDK modules call as `requests`: the same functions on one Session."""

    def __init__(self) -> None:
        self.session = EnvOnceSession()
        adapter = SharedTLSAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
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


def _shared_context(url: str, verify: Any, cert: Any) -> ssl.SSLContext | None:
    """The shared context for a verified https request without a client certificate
    trusting a CA file (requests' `verify`: True means certifi's); None otherwise, or
    when the file cannot be loaded (requests then reports it as before)."""
    if not url.lower().startswith("https") or not verify or cert:
        return None
    ca_file = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
    if os.path.isdir(ca_file):
        return None
    try:
        return tlscontexts.for_requests(ca_file)
    except (OSError, ssl.SSLError):
        return None


class SharedTLSAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose verified HTTPS pools use the process's shared context for
    their CA file instead of loading it into a new context per connection. Both methods
    are the ones requests documents for subclassing (requests/adapters.py)."""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        context = _shared_context(request.url or "", verify, cert)
        if context is not None:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs["ssl_context"] = context
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """As requests does, but a pool on a shared context is not handed the CA file
        again (urllib3 would load it into the shared context on every connect)."""
        super().cert_verify(conn, url, verify, cert)
        context = _shared_context(url, verify, cert)
        if context is not None and getattr(conn, "conn_kw", {}).get("ssl_context") is context:
            conn.ca_certs = None
            conn.ca_cert_dir = None


class SharedTLSWebsockets:
    """What the SDK's ws/client.py calls as `websockets`: the module, with a `connect`
    that brings the shared context to a wss:// URI unless one is given."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

        @functools.wraps(module.connect)
        def connect(uri: str, **kwargs: Any) -> Any:
            if uri.lower().startswith("wss:") and "ssl" not in kwargs:
                kwargs["ssl"] = tlscontexts.for_websocket()
            return module.connect(uri, **kwargs)

        self.connect = connect

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def install() -> PooledRequests:
    """Route this process's SDK HTTP calls through one pooled session; returns it.

    Call once per worker process, after the fork (worker/main.py).
    """
    pooled = PooledRequests()
    sdk_transport.requests = pooled  # type: ignore[assignment]
    sdk_ws_client.requests = pooled  # type: ignore[assignment]
    sdk_ws_client.websockets = SharedTLSWebsockets(websockets)  # type: ignore[assignment]
    return pooled
