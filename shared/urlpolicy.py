"""The operator's URL policy for handler URLs (`forward.url`, `openai.baseUrl`).

A tenant who picks a URL picks a request the service makes from inside the
operator's network, and the forward reply comes back into the chat: a read
channel. So every address a handler URL reaches is checked twice: by the API
at create/patch (literal addresses and what the name resolves to then) and by
the worker for every call, on the addresses DNS gives at that moment (a name
that resolved to a public address at create time may point at the metadata
service later).

Rules, in order, for one address (after IPv4-mapped IPv6 is unwrapped):
1. a host or address listed in `url_allow` (name, `.suffix`, IP or CIDR) is allowed;
2. link-local (169.254.0.0/16, fe80::/10) and cloud metadata addresses are refused
   for everyone, admins included;
3. loopback (and the unspecified address, which reaches loopback) on the
   service's own port is refused for everyone (the API's admin routes);
4. an admin's bot may reach anything else (the operator's own choice);
5. another owner's bot may reach only globally routable addresses, and only
   when `url_allow_public` is on (the default).
"""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import msgspec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud instance metadata services: AWS/GCP/Azure/Oracle, ECS task, Alibaba Cloud, AWS IPv6.
100.100.100.200 sits in shared address space (not link-local), so it is named here."""


class UrlRefused(OSError):
    """The URL or an address it resolves to is refused by the operator's URL policy."""


class UrlPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What handler URLs may reach; travels to each worker inside its WorkerSpec."""

    allow: tuple[str, ...] = ()
    """Hosts (`hooks.internal`, `.corp.example` for a suffix), IPs or CIDRs always allowed,
    for every owner; the only way to reach link-local or the service's own port."""
    allow_public: bool = True
    """Whether non-admin owners may reach globally routable addresses."""
    service_port: int = 0
    """The API's own port: loopback on it is refused (0: unknown, nothing refused for it)."""
    trusted: bool = False
    """The bot's owner is an admin (rule 4)."""

    def for_owner(self, trusted: bool) -> "UrlPolicy":
        return msgspec.structs.replace(self, trusted=trusted)

    def check_url(self, url: str) -> tuple[str, int]:
        """(host, port) of an http(s) URL whose literal address, if any, is allowed.

        Raises UrlRefused (bad URL, or a literal address the rules refuse).
        A host name is checked later, on what it resolves to (`check_address`).
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise UrlRefused(f"{url!r} is not a valid URL: {error}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UrlRefused(f"{url!r} is not an http(s) URL with a host")
        host = parts.hostname
        port = port or (443 if parts.scheme == "https" else 80)
        address = _literal(host)
        if address is not None:
            self.check_address(host, address, port)
        return host, port

    def check_address(self, host: str, address: str | IPAddress, port: int) -> None:
        """Apply the module's rules to one address `host` resolved to; raises UrlRefused."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if self._listed(host, ip):
            return
        where = f"{host} ({ip})" if host != str(ip) else str(ip)
        if ip in METADATA_ADDRESSES or ip.is_link_local:
            raise UrlRefused(f"{where} is a link-local or cloud metadata address")
        own_port = self.service_port and port == self.service_port
        if own_port and (ip.is_loopback or ip.is_unspecified):
            raise UrlRefused(f"{where} port {port} is this service's own API")
        if self.trusted:
            return
        if not ip.is_global:
            raise UrlRefused(f"{where} is not a public address and not in the operator's"
                             " url_allow list")
        if not self.allow_public:
            raise UrlRefused(f"{where} is not in the operator's url_allow list")

    def _listed(self, host: str, ip: IPAddress) -> bool:
        name = host.lower().rstrip(".")
        for entry in self.allow:
            entry = entry.strip().lower()
            if not entry:
                continue
            if entry.startswith(".") and name.endswith(entry):
                return True
            if entry == name:
                return True
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    async def check_resolved(self, url: str, resolve_timeout: float = 3.0) -> None:
        """The create/patch check: the URL, then every address its host resolves to now.

        A name that does not resolve (yet) passes here; the worker checks again
        at every call. Raises UrlRefused.
        """
        host, port = self.check_url(url)
        if _literal(host) is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(resolve_timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            return
        for info in infos:
            self.check_address(host, str(info[4][0]), port)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_policy_entries(entries: tuple[str, ...]) -> None:
    """Raises ValueError naming an `allow` entry that is neither a host nor an IP/CIDR."""
    for entry in entries:
        text = entry.strip()
        if not text or (any(c in text for c in " /:") and not _is_network(text)):
            raise ValueError(f"url_allow entry {entry!r} is neither a host name nor an IP/CIDR")


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
