"""The worker's stand-in for the SDK's fragment cache (worker/fragments.py): no timer
task, expired entries dropped when the cache is used."""

import asyncio
import time

import pytest

from worker.fragments import FragmentCache, replace_sdk_cache


def test_entries_expire_without_a_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = FragmentCache()
    cache.set("a", [b"1", b""], 5)
    assert cache.get("a") == [b"1", b""]
    now[0] += 6
    cache.set("b", [b""], 5)
    assert len(cache) == 1, "an abandoned partial event goes on the next set"
    now[0] += 6
    assert cache.get("b") is None and len(cache) == 0


def test_the_sdk_client_keeps_no_clear_task(monkeypatch: pytest.MonkeyPatch) -> None:
    import lark_oapi.ws.client as sdk

    async def main() -> None:
        monkeypatch.setattr(sdk, "loop", asyncio.get_running_loop())
        client = sdk.Client("cli_x", "secret", auto_reconnect=False)
        cron = client._cache._cron
        replace_sdk_cache(client)
        await asyncio.sleep(0)
        assert cron.cancelled() and isinstance(client._cache, FragmentCache)

    asyncio.run(main())
