"""One aiohttp session per worker, shared by the HTTP handlers.

With a URL policy, every address DNS gives for a handler URL's host is checked
before the connection is made (the resolver below), so a name that now points
at the metadata service or this service's own API is refused at call time,
not only when the URL was saved. aiohttp skips the resolver for literal IP
hosts and would follow redirects to any address, so handlers also call
`check_url` and never follow redirects.
"""

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from shared.urlpolicy import UrlPolicy, UrlRefused


class PolicyResolver(AbstractResolver):
    """DNS resolution that drops every address the policy refuses (all refused: UrlRefused)."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refusal: UrlRefused | None = None
        for result in results:
            try:
                self._policy.check_address(host, result["host"], port)
            except UrlRefused as error:
                refusal = error
                continue
            allowed.append(result)
        if not allowed:
            raise refusal or UrlRefused(f"{host} resolves to no address")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


class HttpSession:
    """Creates the session lazily, inside the running loop, and closes it once."""

    def __init__(self, policy: UrlPolicy | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._policy = policy

    def check_url(self, url: str) -> None:
        """Refuse a URL whose literal address the policy refuses; raises UrlRefused."""
        if self._policy is not None:
            self._policy.check_url(url)

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            kwargs: dict[str, Any] = {}
            if self._policy is not None:
                kwargs["connector"] = aiohttp.TCPConnector(resolver=PolicyResolver(self._policy))
            self._session = aiohttp.ClientSession(**kwargs)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def refusal_of(error: BaseException) -> UrlRefused | None:
    """The UrlRefused behind an aiohttp connection error, if the policy caused it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UrlRefused):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, UrlRefused):
            return os_error
        seen = seen.__cause__ or seen.__context__
    return None
