"""The operator's security settings, as both the API and each worker apply them.

The supervisor builds one SecurityPolicy from the `[security]` config table
and hands each worker a copy made for the bot's owner (`for_owner`), inside
its WorkerSpec; the API checks the same rules at create/patch. docs/security.md
describes each control and its setting.
"""

import msgspec

from shared.urlpolicy import UrlPolicy


class SecurityPolicy(msgspec.Struct, frozen=True, kw_only=True):
    urls: UrlPolicy = msgspec.field(default_factory=UrlPolicy)
    """What `forward.url` and `openai.baseUrl` may reach (shared/urlpolicy.py)."""
    python_modules: tuple[str, ...] = ()
    """Module prefixes non-admin owners may name as python handler targets (shared/pytarget.py)."""
    webhook_max_age: float | None = None
    """Seconds a signed push's X-Lark-Request-Timestamp may be away from now; None: the
    spool's dedup retention (a replay is then refused or recognised as a duplicate). A
    value above the retention is lowered to it."""

    @property
    def trusted(self) -> bool:
        """The bot's owner is an admin (set by `for_owner`)."""
        return self.urls.trusted

    def serving_on(self, port: int) -> "SecurityPolicy":
        """This policy for a service whose API listens on `port` (refused on loopback)."""
        urls = msgspec.structs.replace(self.urls, service_port=port)
        return msgspec.structs.replace(self, urls=urls)

    def for_owner(self, trusted: bool) -> "SecurityPolicy":
        """This policy as it applies to a bot whose owner is (not) an admin."""
        return msgspec.structs.replace(self, urls=self.urls.for_owner(trusted))


WEBHOOK_AUTH_REQUIRED = (
    "a webhook-mode bot needs encryptKey (signed, encrypted pushes) or at least"
    " verificationToken; without either anyone could push events to it"
)
"""Why a webhook-mode bot without either secret is refused (API 400, worker `error`)."""
