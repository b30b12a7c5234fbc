"""Persistent state: users, tokens, bots and their wishes, behind one interface.

Import from here: `Store` (the interface), `open_store` (the configured
implementation), the records and the errors.
"""

from shared.paths import DataPaths
from store.interface import Store
from store.records import BotRecord, Conflict, NotFound, User
from store.sqlite import SQLiteStore


def open_store(paths: DataPaths) -> Store:
    """The store for this data directory (created and migrated when new)."""
    return SQLiteStore(paths)


__all__ = ["BotRecord", "Conflict", "NotFound", "SQLiteStore", "Store", "User", "open_store"]
