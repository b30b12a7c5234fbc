"""Bots and their desired state in SQLite; secrets sealed by the BotCodec."""

import logging
import sqlite3
import time
from typing import Any

import msgspec

from shared.botconfig import BotConfig
from shared.logs import redactor
from store.codec import KEY_CANARY, BotCodec, redaction_owner
from store.records import BotBrief, BotRecord, Conflict, NotFound, new_bot_id
from store.sqlite.connection import Database

logger = logging.getLogger(__name__)

DESIRED_SQL = "desired_connected = 1 OR use_websocket = 0"
"""The bots the supervisor keeps a worker for, as one SQL condition for every query."""

_BOT_SELECT = (
    "SELECT id, owner, name, app_id, app_secret, verification_token, encrypt_key,"
    " use_websocket, domain, handler, options, desired_connected, created, updated, shared"
    " FROM bots"
)


class BotTables:
    """The bots half of SQLiteStore (see store.interface.Store for the contract)."""

    db: Database
    codec: BotCodec

    def create_bot(self, owner: str, config: BotConfig) -> BotRecord:
        bot_id = new_bot_id()
        now = time.time()
        config = msgspec.structs.replace(config, id=bot_id)
        with self.db.transaction() as conn:
            _check_app_id(conn, owner, config.app_id, bot_id)
            conn.execute(
                "INSERT INTO bots (id, owner, name, app_id, app_secret, verification_token,"
                " encrypt_key, use_websocket, domain, handler, options, desired_connected,"
                " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (bot_id, owner, *self.codec.columns(config), now, now),
            )
        logger.info("bot %s created for %s", bot_id, owner)
        return BotRecord(config, owner, False, now, now)

    def get_bot(self, bot_id: str, owner: str | None = None) -> BotRecord:
        sql, params = _BOT_SELECT + " WHERE id = ?", (bot_id,)
        if owner is not None:
            sql, params = sql + " AND owner = ?", (bot_id, owner)
        rows = self.db.query(sql, params)
        if not rows:
            raise NotFound(bot_id)
        return self._record(rows[0])

    def bot_brief(self, bot_id: str, owner: str | None = None) -> BotBrief:
        sql = "SELECT id, owner, use_websocket, desired_connected FROM bots WHERE id = ?"
        params: tuple[str, ...] = (bot_id,)
        if owner is not None:
            sql, params = sql + " AND owner = ?", (bot_id, owner)
        rows = self.db.query(sql, params)
        if not rows:
            raise NotFound(bot_id)
        found_id, found_owner, use_websocket, desired = rows[0]
        return BotBrief(found_id, found_owner, bool(use_websocket), bool(desired))

    def list_bots(self, owner: str | None = None) -> list[BotRecord]:
        if owner is None:
            rows = self.db.query(_BOT_SELECT + " ORDER BY created")
        else:
            rows = self.db.query(_BOT_SELECT + " WHERE owner = ? ORDER BY created", (owner,))
        return [self._record(row) for row in rows]

    def bot_ids(self, owner: str | None = None) -> list[tuple[str, str]]:
        if owner is None:
            return self.db.query("SELECT id, owner FROM bots ORDER BY created")
        return self.db.query(
            "SELECT id, owner FROM bots WHERE owner = ? ORDER BY created", (owner,)
        )

    def update_bot(self, bot_id: str, owner: str | None, **changes: Any) -> BotRecord:
        unknown = set(changes) - (set(BotConfig.__struct_fields__) - {"id"})
        if unknown:
            raise ValueError(f"not updatable: {unknown}")
        now = time.time()
        with self.db.transaction() as conn:
            current = self.get_bot(bot_id, owner)
            config = msgspec.structs.replace(current.config, **changes)
            if config.app_id != current.config.app_id:
                _check_app_id(conn, current.owner, config.app_id, bot_id)
            conn.execute(
                "UPDATE bots SET name = ?, app_id = ?, app_secret = ?, verification_token = ?,"
                " encrypt_key = ?, use_websocket = ?, domain = ?, handler = ?, options = ?,"
                " updated = ?"
                " WHERE id = ?",
                (*self.codec.columns(config), now, bot_id),
            )
        return BotRecord(config, current.owner, current.desired_connected, current.created, now,
                         current.shared)

    def set_shared(self, bot_id: str, shared: bool) -> BotRecord:
        """Mark the bot shared (other bots may use its appId) or not; raises NotFound."""
        with self.db.transaction() as conn:
            cursor = conn.execute("UPDATE bots SET shared = ? WHERE id = ?", (int(shared), bot_id))
            if cursor.rowcount == 0:
                raise NotFound(bot_id)
        return self.get_bot(bot_id)

    def delete_bot(self, bot_id: str, owner: str | None = None) -> None:
        with self.db.transaction() as conn:
            sql, params = "DELETE FROM bots WHERE id = ?", (bot_id,)
            if owner is not None:
                sql, params = sql + " AND owner = ?", (bot_id, owner)
            if conn.execute(sql, params).rowcount == 0:
                raise NotFound(bot_id)
        redactor.drop(redaction_owner(bot_id))
        logger.info("bot %s deleted", bot_id)

    def bot_config(self, bot_id: str) -> BotConfig:
        return self.get_bot(bot_id).config

    def set_desired_connected(self, bot_id: str, connected: bool) -> None:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE bots SET desired_connected = ? WHERE id = ?", (int(connected), bot_id)
            )
            if cursor.rowcount == 0:
                raise NotFound(bot_id)

    def desired_bots(self) -> list[str]:
        rows = self.db.query(f"SELECT id FROM bots WHERE {DESIRED_SQL} ORDER BY created")
        return [row[0] for row in rows]

    def is_desired(self, bot_id: str) -> bool:
        sql = f"SELECT 1 FROM bots WHERE id = ? AND ({DESIRED_SQL})"
        return bool(self.db.query(sql, (bot_id,)))

    def reseal_secrets(self) -> int:
        """Re-encrypt every stored secret under the first key; returns how many bots.

        One short transaction per bot, so the API keeps working meanwhile;
        the key canary is re-sealed last.
        """
        count = 0
        for (bot_id,) in self.db.query("SELECT id FROM bots"):
            with self.db.transaction() as conn:
                rows = conn.execute(_BOT_SELECT + " WHERE id = ?", (bot_id,)).fetchall()
                if not rows:
                    continue
                sealed = self.codec.columns(self._record(rows[0]).config)
                conn.execute(
                    "UPDATE bots SET app_secret = ?, verification_token = ?, encrypt_key = ?,"
                    " handler = ?, options = ? WHERE id = ?",
                    (sealed[2], sealed[3], sealed[4], sealed[7], sealed[8], bot_id),
                )
            count += 1
        with self.db.transaction() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'key_check'",
                         (self.codec.box.seal(KEY_CANARY),))
        return count

    def _record(self, row: tuple[Any, ...]) -> BotRecord:
        bot_id, owner, *columns, desired, created, updated, shared = row
        config = self.codec.config(bot_id, tuple(columns))
        return BotRecord(config, owner, bool(desired), created, updated, bool(shared))


def _check_app_id(conn: sqlite3.Connection, owner: str, app_id: str, bot_id: str) -> None:
    """One bot per app in the whole registry: two bots on one appId would split its events.

    Another owner's bot is allowed only while every bot already on the appId
    is marked shared by an admin; one owner never has two bots on one appId.
    Raises Conflict naming `$.appId` (another owner's bot id is not shown).
    """
    clashes = conn.execute(
        "SELECT id, owner, shared FROM bots WHERE app_id = ? AND id != ?", (app_id, bot_id)
    ).fetchall()
    for other_id, other_owner, shared in clashes:
        if other_owner == owner:
            raise Conflict(f"appId {app_id!r} is already used by your bot {other_id}"
                           " - at `$.appId`")
        if not shared:
            raise Conflict(f"appId {app_id!r} is already registered by another bot; one bot"
                           " per app unless an admin marks it shared - at `$.appId`")
