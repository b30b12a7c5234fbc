"""Small synchronous client of the control API, shared by tests, fixtures and the bench."""

from __future__ import annotations

from typing import Any

import requests


class SimClientError(Exception):
    """A non-2xx control API answer; keeps status and body so tests can assert on them."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"simulator answered {status}: {body}")
        self.status = status
        self.body = body


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(options: dict[str, Any]) -> dict[str, Any]:
    return {_camel(k): v for k, v in options.items()}


class SimClient:
    """Keyword options may be snake_case or camelCase; they are sent camelCase."""

    def __init__(self, base_url: str, timeout: float = 10.0, verify: str | bool = True) -> None:
        """`verify`: a CA file for a simulator on https (`simulator/tls.py`), as requests takes."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._verify = verify  # per request: requests lets REQUESTS_CA_BUNDLE beat Session.verify
        self._http = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self._http.request(method, self.base_url + path, json=body, timeout=self.timeout,
                                  verify=self._verify)
        try:
            data = resp.json()
        except ValueError:
            data = resp.text
        if resp.status_code >= 300:
            raise SimClientError(resp.status_code, data)
        return data

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/health")

    def create_app(self, app_id: str, app_secret: str, **options: Any) -> dict[str, Any]:
        body = {"appId": app_id, "appSecret": app_secret, **_camel_keys(options)}
        return self._call("POST", "/_sim/apps", body)

    def push_event(self, app_id: str, text: str = "", **fields: Any) -> dict[str, Any]:
        """Returns {eventId, messageId}; raises SimClientError(404) with no live connection."""
        body = {"text": text, **_camel_keys(fields)}
        return self._call("POST", f"/_sim/apps/{app_id}/events", body)

    def redeliver(self, app_id: str, event_id: str) -> dict[str, Any]:
        return self._call("POST", f"/_sim/apps/{app_id}/events/{event_id}/redeliver", {})

    def fault(self, app_id: str, **faults: Any) -> dict[str, Any]:
        return self._call("POST", f"/_sim/apps/{app_id}/faults", _camel_keys(faults))

    def info(self, app_id: str) -> dict[str, Any]:
        return self._call("GET", f"/_sim/apps/{app_id}")

    def sent(self, app_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The IM messages the bot sent, without the first `after` of them."""
        suffix = f"?after={after}" if after else ""
        return self._call("GET", f"/_sim/apps/{app_id}/sent{suffix}")

    def flood(self, app_id: str, count: int, window: int = 1) -> dict[str, Any]:
        """Push `count` events, at most `window` un-ACKed: {count, window, seconds, ...}."""
        return self._call("POST", f"/_sim/apps/{app_id}/flood",
                          {"count": count, "window": window})

    def card_action(self, app_id: str, **fields: Any) -> dict[str, Any]:
        """Push a card click (over webhook when `url` is given) and return what came back:
        {eventId, via, response, seconds, ...}."""
        return self._call("POST", f"/_sim/apps/{app_id}/card-actions", _camel_keys(fields))

    def webhook(self, app_id: str, url: str, **fields: Any) -> dict[str, Any]:
        """Have the simulator push to `url` as Feishu would; returns {status, body, ...}."""
        body = {"url": url, **_camel_keys(fields)}
        return self._call("POST", f"/_sim/apps/{app_id}/webhook", body)
