"""The PostgreSQL database of a cluster: one connection, a lock, transactions, migrations.

It offers the same small surface as store.sqlite.connection.Database
(`query`, `transaction`, `schema_version`, `migrate`), so the SQL of the
users and bots tables is written once: statements use `?` placeholders,
translated here to psycopg's `%s`. A connection broken by a database restart
is replaced on the next call, so the API recovers without a node restart.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from store.postgres import schema

CONNECT_TIMEOUT = 5
"""Seconds; a database that does not answer fails the call instead of hanging the API."""

BOUNDED = {
    "connect_timeout": CONNECT_TIMEOUT,
    "options": "-c statement_timeout=5000",
    "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
}
"""libpq settings that bound every wait: a statement runs at most 5 s, and a peer that
vanished (no RST, e.g. a cut network) is noticed within ~11 s instead of never."""


def _pg(sql: str) -> str:
    """`?` placeholders (the SQLite spelling every table module uses) as psycopg's `%s`."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """What a transaction hands the table code: execute() with `?` placeholders."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(_pg(sql), params)  # type: ignore[arg-type]


class Database:
    def __init__(self, url: str) -> None:
        """Connect; raises psycopg.Error when the database cannot be reached."""
        self._url = url
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._depth = 0

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self._url, autocommit=True, **BOUNDED)

    def _live(self) -> psycopg.Connection:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def schema_version(self) -> int:
        with self._lock:
            return schema.schema_version(self._live())

    def migrate(self) -> int:
        """Apply every missing step, serialised across nodes by an advisory lock."""
        with self._lock:
            return schema.migrate(self._live())

    @contextmanager
    def transaction(self) -> Iterator[_Connection]:
        """One transaction (nested calls join the outer one), rolled back on any exception."""
        with self._lock:
            conn = self._live() if self._depth == 0 else self._conn
            self._depth += 1
            try:
                with conn.transaction():
                    yield _Connection(conn)
            finally:
                self._depth -= 1

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._live() if self._depth == 0 else self._conn
            return conn.execute(_pg(sql), params).fetchall()  # type: ignore[arg-type]

    def notify(self, payload: str) -> None:
        """Tell every listening node (channel `larkfleet`); delivered at commit."""
        with self._lock:
            conn = self._live() if self._depth == 0 else self._conn
            conn.execute("SELECT pg_notify(%s, %s)", (schema.CHANNEL, payload))
