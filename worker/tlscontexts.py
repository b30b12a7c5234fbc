"""The worker's TLS client contexts, built once in the zygote and shared by every worker.

Building a client context loads the CA bundle into OpenSSL structures: with the usual ~140
public CAs that is 0.8-1.7 MiB of private memory per context (bench/NOTES.md, "Private
memory"), and a worker built two: websockets makes `ssl.create_default_context()` for each
wss:// connect (websockets/asyncio/client.py), and urllib3 makes a context and loads the
bundle requests names (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's) for each new
HTTPS connection (urllib3/connection.py `_ssl_wrap_socket_and_match_hostname`). Built in
the zygote, before the fork, the same contexts are shared copy-on-write by all workers;
worker/sdkhttp.py hands them to the SDK's WebSocket connect and HTTP session.

The contexts are built from the environment the zygote started with, which every worker
inherits (a bot's proxy setting changes only proxy variables, worker/proxy.py). A CA bundle
changed on disk is read again when the service restarts, not at each worker start.
"""

import os
import ssl
from collections.abc import Callable

from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context

_contexts: dict[str, ssl.SSLContext] = {}


def _shared(key: str, build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = _contexts.get(key)
    if context is None:
        context = _contexts[key] = build()
    return context


def for_websocket() -> ssl.SSLContext:
    """What websockets builds for a wss:// URI, `ssl.create_default_context()` (the
    system's CAs or SSL_CERT_FILE / SSL_CERT_DIR), one per process."""
    return _shared("websocket", ssl.create_default_context)


def for_requests(ca_bundle: str) -> ssl.SSLContext:
    """The context urllib3 would build for a verified connection trusting the CA file
    `ca_bundle` (requests' `verify`), one per file per process; raises OSError or
    ssl.SSLError when the file cannot be loaded."""
    def build() -> ssl.SSLContext:
        context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        context.load_verify_locations(cafile=ca_bundle)
        return context

    return _shared(f"requests:{ca_bundle}", build)


def requests_bundle(environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """The CA file requests verifies with in this environment (requests/sessions.py
    `merge_environment_settings`, requests/adapters.py `cert_verify`)."""
    env = os.environ if environ is None else environ
    return env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH


def build_for_workers() -> None:
    """In the zygote: drop contexts made so far (the warm-up's throwaway CA) and build the
    ones workers will use from the environment. A bundle that cannot be loaded is left
    to each worker, which then reports the error on its own connect as before."""
    _contexts.clear()
    for build in (for_websocket, lambda: for_requests(requests_bundle())):
        try:
            build()
        except (OSError, ssl.SSLError, ValueError):
            continue
