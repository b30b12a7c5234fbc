"""The `--database` URL: what selects cluster mode, and how it is shown (password masked)."""

from urllib.parse import urlsplit, urlunsplit

DATABASE_URL_ENV = "LARKFLEET_DATABASE_URL"
NODE_ID_ENV = "LARKFLEET_NODE_ID"
SCHEMES = ("postgresql", "postgres")
MASK = "***"


class DatabaseUrlError(ValueError):
    """The URL is not a PostgreSQL URL; the message never contains the password."""


def check(url: str) -> str:
    """Return `url` when it is a postgresql:// (or postgres://) URL; raises DatabaseUrlError."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise DatabaseUrlError(
            f"--database: expected a postgresql://user:password@host/db URL, got {masked(url)!r}"
        )
    return url


def masked(url: str) -> str:
    """`url` with its password replaced by ***, for logs, errors and --print-config."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def password(url: str) -> str | None:
    """The URL's password (percent-decoded), for the log redactor; None when there is none."""
    return urlsplit(url).password
