"""Field case 18: the WebSocket follows HTTPS_PROXY/HTTP_PROXY/NO_PROXY and a per-bot proxy.

A real `larkfleet serve` started with the proxy variables pointing at a local
forward proxy; the lark_oapi SDK alone opens its WebSocket with proxy=None.
"""

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from tests.fixtures.service import Service, wait_until
from tests.fixtures.sim import SimApp
from tests.proxykit import ForwardProxy
from tests.test_event_e2e import bot_log, connected_bot, wait_replies

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def env_proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, env_proxy: ForwardProxy) -> Iterator[Service]:
    env = {"HTTPS_PROXY": env_proxy.url, "HTTP_PROXY": env_proxy.url, "NO_PROXY": "",
           "LARKFLEET_BACKOFF_BASE": "0.2"}
    service = Service(tmp_path_factory.mktemp("proxy") / "data", env=env).start()
    yield service
    assert service.stop() == 0


def _sim_host(app: SimApp) -> str:
    return urlsplit(app.url).netloc


def test_row18_the_websocket_goes_through_the_environments_proxy(
    fleet: Service, env_proxy: ForwardProxy, sim_app: Callable[..., SimApp]
) -> None:
    app = sim_app()
    bot_id, _ = connected_bot(fleet, app)
    assert env_proxy.seen(f"CONNECT {_sim_host(app)}"), env_proxy.requests
    assert env_proxy.seen(f"POST {app.url}/callback/ws/endpoint")
    pushed = app.push("through the proxy")
    assert wait_replies(app, pushed["messageId"])[0]["text"] == "through the proxy"
    assert "platform connections proxy: from the environment" in bot_log(fleet, bot_id)


def test_a_bots_own_proxy_or_direct_wins_over_the_environment(
    fleet: Service, env_proxy: ForwardProxy, sim_app: Callable[..., SimApp]
) -> None:
    with ForwardProxy() as own:
        app = sim_app()
        user_url = own.url.replace("http://", "http://bob:hunter2@")
        bot_id, _ = connected_bot(fleet, app, options={"proxy": user_url})
        assert own.seen(f"CONNECT {_sim_host(app)}"), own.requests
        pushed = app.push("through my own proxy")
        assert wait_replies(app, pushed["messageId"])[0]["text"] == "through my own proxy"
        shown = fleet.request("GET", f"/api/feishu/bots/{bot_id}").json()["options"]["proxy"]
        assert shown == own.url.replace("http://", "http://bob:***@")
        assert "hunter2" not in bot_log(fleet, bot_id)

    before = len(env_proxy.requests)
    direct = sim_app()
    direct_id, _ = connected_bot(fleet, direct, options={"proxy": "direct"})
    pushed = direct.push("no proxy at all")
    assert wait_replies(direct, pushed["messageId"])[0]["text"] == "no proxy at all"
    assert len(env_proxy.requests) == before, env_proxy.requests[before:]
    wait_until(lambda: "platform connections proxy: none (direct)" in bot_log(fleet, direct_id),
               5, "the direct route in the log")
