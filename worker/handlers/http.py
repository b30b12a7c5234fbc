"""One aiohttp session per worker, shared by the HTTP handlers."""

import aiohttp


class HttpSession:
    """Creates the session lazily, inside the running loop, and closes it once."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
