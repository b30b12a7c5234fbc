"""What worker/sdkhttp.py relies on in lark_oapi, requests and websockets, checked loudly.

sdkhttp points the SDK modules' `requests` and `websockets` names at its own objects. If a
new SDK stops calling them the way this expects, these fail (instead of workers silently
loading CA bundles again or opening a connection per call).
"""

import inspect

import certifi
import lark_oapi.core.http.transport as sdk_transport
import lark_oapi.ws.client as sdk_ws_client
import pytest
import requests
import websockets

from worker import sdkhttp, tlscontexts


@pytest.fixture
def installed(monkeypatch):
    for module, name in ((sdk_transport, "requests"), (sdk_ws_client, "requests"),
                         (sdk_ws_client, "websockets")):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored afterwards
    pooled = sdkhttp.install()
    yield pooled
    pooled.close()


def test_the_sdk_calls_the_module_names_sdkhttp_replaces():
    assert sdk_transport.requests is requests and sdk_ws_client.websockets is websockets
    assert "requests.request(" in inspect.getsource(sdk_transport.Transport.execute)
    assert "requests.post(" in inspect.getsource(sdk_ws_client.Client._get_conn_url)
    connect = inspect.getsource(sdk_ws_client.Client._connect)
    assert "websockets.connect(conn_url, **_ws_connect_kwargs(" in connect


def test_the_websockets_stand_in_keeps_the_signature_the_sdk_inspects(installed):
    kwargs = sdk_ws_client._ws_connect_kwargs({"X-Test": "1"})
    assert kwargs == {"additional_headers": {"X-Test": "1"}, "proxy": None}
    sdk_ws_client.websockets.connect("ws://127.0.0.1:9/")  # no ssl added: ws:// refuses one
    opener = sdk_ws_client.websockets.connect("wss://127.0.0.1:9/")
    assert "websocket" in tlscontexts._contexts
    assert opener is not None and sdk_ws_client.websockets.exceptions is websockets.exceptions


def test_verified_https_pools_share_the_context_of_their_ca_file(installed):
    adapter = installed.session.get_adapter("https://example.invalid/")
    assert isinstance(adapter, sdkhttp.SharedTLSAdapter)
    request = requests.Request("GET", "https://example.invalid/x").prepare()
    shared = tlscontexts.for_requests(certifi.where())
    for verify in (True, certifi.where()):
        _, pool_kwargs = adapter.build_connection_pool_key_attributes(request, verify)
        assert pool_kwargs["ssl_context"] is shared and "ca_certs" not in pool_kwargs
        pool = adapter.get_connection_with_tls_context(request, verify)
        adapter.cert_verify(pool, request.url, verify, None)
        assert pool.ca_certs is None and pool.conn_kw["ssl_context"] is shared
    for verify, cert in ((False, None), (True, "client.pem")):
        _, pool_kwargs = adapter.build_connection_pool_key_attributes(request, verify, cert)
        assert "ssl_context" not in pool_kwargs


def test_the_fragment_cache_the_worker_replaces_is_used_as_it_expects():
    """worker/fragments.py swaps the SDK's ExpiringCache (a task waking every 30 s) for a
    lazily expiring one with the same two methods."""
    source = inspect.getsource(sdk_ws_client.Client)
    assert "self._cache: ExpiringCache = ExpiringCache(clear_interval=30)" in source
    uses = {line.split("self._cache.", 1)[1].split("(", 1)[0]
            for line in source.splitlines() if "self._cache." in line}
    assert uses == {"get", "set"}
    assert "self._cron = loop.create_task" in inspect.getsource(sdk_ws_client.ExpiringCache)


def test_the_websocket_keepalive_period_is_the_workers(monkeypatch):
    from worker import proxy
    from worker.connection import KEEPALIVE_S

    monkeypatch.setattr(sdk_ws_client, "_ws_connect_kwargs", sdk_ws_client._ws_connect_kwargs)
    proxy.apply("direct", environ={})
    assert sdk_ws_client._ws_connect_kwargs()["ping_interval"] == KEEPALIVE_S
    assert "ping_interval" in inspect.signature(websockets.connect).parameters


def test_the_session_merges_the_environment_once_per_origin_as_requests_would(monkeypatch):
    """EnvOnceSession keeps requests' merge per origin: the same result as a plain Session
    (proxies, the NO_PROXY bypass, the CA bundle variable), read once per origin."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3129")
    monkeypatch.setenv("NO_PROXY", "bypass.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    reads = []
    real = requests.sessions.get_environ_proxies
    monkeypatch.setattr(requests.sessions, "get_environ_proxies",
                        lambda url, no_proxy=None: reads.append(url) or real(url, no_proxy))
    once, plain = sdkhttp.EnvOnceSession(), requests.Session()
    urls = ["https://open.example/open-apis/a", "https://open.example/open-apis/b?x=1",
            "http://open.example/x", "https://bypass.example/y", "https://open.example:8443/"]
    for url in urls * 2:
        for verify in (True, None, False):
            got = once.merge_environment_settings(url, {}, None, verify, None)
            assert got == plain.merge_environment_settings(url, {}, None, verify, None), url
            got["proxies"]["https"] = "http://changed.example"  # a caller's edit stays its own
    assert once.merge_environment_settings(urls[0], {}, None, True, None)["proxies"][
        "https"] == "http://proxy.example:3128"
    assert "https" not in once.merge_environment_settings(urls[3], {}, None, True, None)[
        "proxies"]
    own = {"https": "http://own.example:1"}
    assert once.merge_environment_settings(urls[0], own, None, True, None)["proxies"]["https"] \
        == "http://own.example:1"
    assert once.merge_environment_settings(urls[0], None, None, True, None) == \
        plain.merge_environment_settings(urls[0], None, None, True, None)  # no env proxies
    plain_reads = len(urls) * 2 * 3 + 1 + 2  # the plain session's, and the calls not cached
    assert len(reads) - plain_reads == 4 * 3  # once per (origin, verify): 4 origins
