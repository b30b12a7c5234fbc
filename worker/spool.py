"""The bot's durable event spool and chat history (one SQLite file per bot).

Durability: WAL with `synchronous=NORMAL`. A commit is in the WAL before
`accept` returns, so a killed or crashed worker (SIGKILL, OOM, segfault) loses
nothing that was ACKed. A power loss or kernel crash may lose the last
commits since the previous WAL checkpoint: the platform then redelivers those
events (they were ACKed, so at worst they are lost, never doubled).

Rows: `pending` (to process, maybe waiting for `next_attempt_at`), `done`
(kept for the retention period so redeliveries are still recognised as
duplicates), `dead` (gave up after N attempts; kept until retried). An
attempt is counted when the consumer takes the row (`take`), before the
handler runs, so a poison event that kills its worker still runs out of
attempts.
All calls are short single-statement transactions; a lock makes the object
safe to share between the event loop thread and any other thread.

WAL checkpoints fsync; SQLite's auto-checkpoint would run them inside an
occasional `add`, on the ACK path (measured: p99.9 of `add` went from tens
of microseconds to 3 ms). `checkpoint` runs them on a second connection from
a background thread instead; the auto-checkpoint stays as a safety net for a
WAL that grows past SAFETY_CHECKPOINT_PAGES under a flood. `prune` runs on
that second connection too, in batches through an index, so the ACK path
never waits for it.
"""

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PENDING = "pending"
DONE = "done"
DEAD = "dead"

NO_OUTCOME = "the attempt ended with its worker (killed, crashed or hung) before any outcome"
"""`last_error` of a taken row until its attempt records how it went."""

MIN_RETENTION_S = 8 * 3600.0
SAFETY_CHECKPOINT_PAGES = 20_000
"""Only when the background checkpoints cannot keep up does `add` checkpoint itself."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    chat_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    handled INTEGER NOT NULL DEFAULT 0,
    answer TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    message_id TEXT
);
CREATE INDEX IF NOT EXISTS events_status_chat ON events (status, chat_key, seq);
CREATE INDEX IF NOT EXISTS events_done_at ON events (updated_at) WHERE status = 'done';
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    chat_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_chat ON history (chat_id, id);
CREATE TABLE IF NOT EXISTS streams (
    event_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    final_text TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS streams_at ON streams (updated_at);
"""

PRUNE_BATCH = 500
"""Rows one prune transaction deletes: the SQLite write lock `add` may wait for stays
short (milliseconds) however large the backlog of old rows is."""

_STAMP_PRUNE = (
    "INSERT OR IGNORE INTO meta (key, value)"
    " VALUES ('pruned_at', CASE WHEN EXISTS (SELECT 1 FROM events) THEN 0 ELSE ? END)"
)
"""A new spool has nothing to prune yet: stamped as pruned now. One from before the stamp
existed, rows and all, gets 0: its first prune is overdue."""

_PRUNE_EVENTS = (
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events INDEXED BY events_done_at"
    " WHERE status = 'done' AND updated_at < ? LIMIT ?)"
)
"""Finds old done rows through the partial index `events_done_at` (named: the planner
would otherwise walk every done row through `events_status_chat` for each batch)."""
_PRUNE_STREAMS = (
    "DELETE FROM streams WHERE event_id IN (SELECT event_id FROM streams"
    " WHERE updated_at < ? LIMIT ?)"
)
_INSERT_DONE = (
    "INSERT OR IGNORE INTO events (event_id, chat_key, event_type, payload, status,"
    " handled, created_at, updated_at) VALUES (?, ?, ?, ?, 'done', 0, ?, ?)"
)
_INSERT = (
    "INSERT OR IGNORE INTO events (event_id, chat_key, event_type, payload, created_at,"
    " updated_at, message_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_COMPLETE = (
    "UPDATE events SET status = 'done', last_error = NULL, updated_at = ? WHERE event_id = ?"
    " RETURNING coalesce(message_id, '')"
)
_SEED = (
    "INSERT OR IGNORE INTO events (event_id, chat_key, event_type, payload, status,"
    " handled, created_at, updated_at, message_id)"
    " VALUES (?, ?, 'answered elsewhere', x'', 'done', 1, ?, ?, ?)"
)
_SETTLE = (
    "UPDATE events SET status = 'done', last_error = 'answered on another node',"
    " updated_at = ? WHERE status = 'pending' AND (event_id = ? OR message_id = ?)"
)
_ANSWERED_SINCE = (
    "SELECT event_id, coalesce(message_id, '') FROM events INDEXED BY events_done_at"
    " WHERE status = 'done' AND updated_at >= ? AND event_type != 'answered elsewhere'"
)
_MESSAGE_ID_COLUMN = "ALTER TABLE events ADD COLUMN message_id TEXT"
"""Spools written before messages were deduplicated by message id lack the column."""
_MESSAGE_ID_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS events_message ON events (message_id)"
    " WHERE message_id IS NOT NULL"
)


@dataclass(frozen=True)
class SpooledEvent:
    """One spooled event as the consumer sees it."""

    seq: int
    event_id: str
    chat_key: str
    event_type: str
    payload: bytes
    attempts: int
    handled: bool
    answer: str | None
    created_at: float


@dataclass(frozen=True)
class StreamState:
    """The card a streamed answer is shown in; `final_text` once the stream ended."""

    message_id: str
    final_text: str | None


@dataclass(frozen=True)
class PendingEvent:
    """A pending event as the consumer's schedule needs it."""

    event_id: str
    chat_key: str
    next_attempt_at: float


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the API lists it."""

    event_id: str
    chat_id: str
    event_type: str
    attempts: int
    last_error: str | None
    created_at: float
    updated_at: float


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Spool:
    """Owns the spool database of one bot."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = _connect(path)
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(events)")}
        if "message_id" not in columns:
            self._conn.execute(_MESSAGE_ID_COLUMN)
        self._conn.execute(_MESSAGE_ID_INDEX)
        self._conn.execute(_STAMP_PRUNE, (time.time(),))
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointed_changes = self._conn.total_changes
        self.answered: list[tuple[str, str]] | None = None
        """Cluster mode: a list the (event id, message id) of every row that becomes done
        is appended to, for the worker to report (worker/session.py); None: not kept."""
        self.on_answered: Callable[[], None] | None = None
        """Called when `answered` stops being empty (the worker schedules its report)."""

    def close(self) -> None:
        """Checkpoint and close; safe to call twice."""
        with self._checkpoint_lock:
            if self._checkpoint_conn is not None:
                self._checkpoint_conn.close()
                self._checkpoint_conn = None
        with self._lock:
            if self._conn is not None:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def written_since_checkpoint(self) -> bool:
        """True when a row changed since the last checkpoint (cheap: a counter read).

        An idle bot must cost nothing at rest: without this check every worker hopped
        to a thread and back each second to checkpoint an unchanged WAL.
        """
        return self._conn.total_changes != self._checkpointed_changes

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking `add` (call from a thread)."""
        with self._checkpoint_lock:
            changes = self._conn.total_changes
            self._background().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._checkpointed_changes = changes

    def _background(self) -> sqlite3.Connection:
        """The second connection, for checkpoints and prunes (hold `_checkpoint_lock`)."""
        if self._checkpoint_conn is None:
            self._checkpoint_conn = _connect(self.path)
        return self._checkpoint_conn

    def add(self, event_id: str, chat_key: str, event_type: str, payload: bytes,
            message_id: str = "") -> bool:
        """Commit a new event; False when its event id, or its IM message id, is already
        known (a duplicate: the platform may push one message again under a new event id,
        feishu receive-event doc)."""
        now = time.time()
        with self._lock:  # one statement: a unique index on each id ignores either duplicate
            cur = self._conn.execute(_INSERT, (event_id, chat_key, event_type, payload, now, now,
                                               message_id or None))
        return cur.rowcount == 1

    def add_answered(self, event_id: str, event_type: str, payload: bytes) -> bool:
        """Record a callback answered at once (a card action): done from the start, so the
        consumer never runs it, yet kept for the retention period to recognise a redelivery.
        False when the event id is already known."""
        now = time.time()
        with self._lock:
            cur = self._conn.execute(_INSERT_DONE, (event_id, event_id, event_type, payload,
                                                    now, now))
        if cur.rowcount == 1:
            self._note_done(event_id, ("",))
        return cur.rowcount == 1

    def mark_answered(self, keys: list[tuple[str, str]]) -> int:
        """Record events another node answered, (event id, message id or "") pairs: a
        redelivery of one (same event id, or the same message under a new event id) is then
        a duplicate here, and a pending row of one is settled without running it.
        Returns the number of pending rows settled."""
        now = time.time()
        settled = 0
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for event_id, message_id in keys:
                    settled += self._conn.execute(
                        _SETTLE, (now, event_id, message_id or None)).rowcount
                self._conn.executemany(_SEED, [(e, e, now, now, m or None) for e, m in keys])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return settled

    def answer_of(self, event_id: str) -> tuple[bool, str | None] | None:
        """(handled, answer) of a known event, None when unknown."""
        with self._lock:
            row = self._conn.execute(
                "SELECT handled, answer FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row is None else (bool(row[0]), row[1])

    def stream(self, event_id: str) -> StreamState | None:
        """The card of an event's streamed answer, if one was sent."""
        with self._lock:
            row = self._conn.execute(
                "SELECT message_id, final_text FROM streams WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row is None else StreamState(row[0], row[1])

    def stream_started(self, event_id: str, message_id: str) -> None:
        """Remember the card before any update, so a retry after a crash finishes it."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO streams (event_id, message_id, final_text, updated_at)"
                " VALUES (?, ?, NULL, ?)", (event_id, message_id, time.time()))

    def stream_finished(self, event_id: str, final_text: str) -> None:
        """The stream ended: a retry only has to show `final_text`, never runs it again."""
        with self._lock:
            self._conn.execute(
                "UPDATE streams SET final_text = ?, updated_at = ? WHERE event_id = ?",
                (final_text, time.time(), event_id))

    def counts(self) -> dict[str, int]:
        """Rows per status, to seed the counters at start."""
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM events GROUP BY status")
            return dict(rows.fetchall())

    def pending(self) -> list[PendingEvent]:
        """Every pending event in arrival order: what the consumer schedules at start."""
        sql = (
            "SELECT event_id, chat_key, next_attempt_at FROM events"
            " WHERE status = 'pending' ORDER BY seq"
        )
        with self._lock:
            return [PendingEvent(*row) for row in self._conn.execute(sql)]

    def get(self, event_id: str) -> SpooledEvent | None:
        """Load one event with its payload."""
        sql = (
            "SELECT seq, event_id, chat_key, event_type, payload, attempts, handled, answer,"
            " created_at FROM events WHERE event_id = ?"
        )
        with self._lock:
            row = self._conn.execute(sql, (event_id,)).fetchone()
        if row is None:
            return None
        return SpooledEvent(*row[:6], bool(row[6]), row[7], row[8])

    def take(self, event_id: str) -> SpooledEvent | None:
        """Count an attempt at a pending event before it runs; the row with that count.

        Committed before the handler runs, so an attempt that ends with the
        worker (os._exit, a native crash, a loop blocked past the heartbeat
        timeout, SIGKILL) is counted too; `last_error` says so until the
        attempt records its real outcome. None when the row is not pending.
        """
        sql = (
            "UPDATE events SET attempts = attempts + 1, last_error = ?, updated_at = ?"
            " WHERE event_id = ? AND status = 'pending'"
            " RETURNING seq, event_id, chat_key, event_type, payload, attempts, handled, answer,"
            " created_at"
        )
        with self._lock:
            row = self._conn.execute(sql, (NO_OUTCOME, time.time(), event_id)).fetchone()
        if row is None:
            return None
        return SpooledEvent(*row[:6], bool(row[6]), row[7], row[8])

    def untake(self, event_id: str) -> None:
        """Give back the attempt `take` counted: the run was cancelled (an orderly stop)."""
        with self._lock:
            self._conn.execute(
                "UPDATE events SET attempts = MAX(attempts - 1, 0), updated_at = ?"
                " WHERE event_id = ? AND status = 'pending'",
                (time.time(), event_id),
            )

    def status(self, event_id: str) -> str | None:
        """The row's status, or None when unknown (never spooled or pruned)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT status FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
        return row[0] if row else None

    def save_answer(self, event_id: str, answer: str | None) -> None:
        """Remember the handler's answer so a failed reply is retried without re-running it."""
        with self._lock:
            self._conn.execute(
                "UPDATE events SET handled = 1, answer = ?, updated_at = ? WHERE event_id = ?",
                (answer, time.time(), event_id),
            )

    def complete(self, event_id: str, chat_id: str = "",
                 history: list[tuple[str, str]] | None = None) -> None:
        """Mark done and append chat history turns in one transaction."""
        now = time.time()
        if not history:
            with self._lock:  # one statement commits on its own: no BEGIN/COMMIT round trips
                row = self._conn.execute(_COMPLETE, (now, event_id)).fetchone()
            self._note_done(event_id, row)
            return
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                row = self._conn.execute(_COMPLETE, (now, event_id)).fetchone()
                for role, content in history or ():
                    self._conn.execute(
                        "INSERT INTO history (chat_id, role, content, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (chat_id, role, content, now),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        self._note_done(event_id, row)

    def _note_done(self, event_id: str, row: tuple[str] | None) -> None:
        if row is not None and self.answered is not None:
            self.answered.append((event_id, row[0]))
            if len(self.answered) == 1 and self.on_answered is not None:
                self.on_answered()

    def fail(self, event_id: str, error: str, next_attempt_at: float | None) -> None:
        """Record a failed attempt (`take` counted it): retry at `next_attempt_at`, or dead
        when it is None."""
        status = DEAD if next_attempt_at is None else PENDING
        with self._lock:
            self._conn.execute(
                "UPDATE events SET status = ?, next_attempt_at = ?,"
                " last_error = ?, updated_at = ? WHERE event_id = ?",
                (status, next_attempt_at or 0.0, error[:1000], time.time(), event_id),
            )

    def revive(self, event_id: str) -> bool:
        """Turn a dead letter back into a fresh pending row; False if it is not dead."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = 0,"
                " handled = 0, answer = NULL, updated_at = ?"
                " WHERE event_id = ? AND status = 'dead'",
                (time.time(), event_id),
            )
        return cur.rowcount == 1

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""
        with self._lock:
            return _dead_letters(self._conn, limit)

    def history(self, chat_id: str, limit: int) -> list[tuple[str, str]]:
        """The last `limit` history messages of a chat as (role, content), oldest first."""
        if limit <= 0:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT role, content FROM history WHERE chat_id = ? ORDER BY id DESC LIMIT ?",
                (chat_id, limit),
            ).fetchall()
        return rows[::-1]

    def pruned_at(self) -> float:
        """When `prune` last ran on this spool (epoch seconds; 0: never, on old rows)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'pruned_at'").fetchone()
        return float(row[0]) if row else 0.0

    def prune(self, retention_s: float, history_keep: int, now: float | None = None,
              batch: int = PRUNE_BATCH) -> int:
        """Delete done rows older than the retention (at least 8 h) and old history.

        Call from a thread: it runs on the background connection, never taking
        the lock the event loop's calls (`add`, on the ACK path) use, in
        transactions of at most `batch` rows through indexes, so between two
        of them an `add` waits for the SQLite write lock a few ms at most.
        Dead rows stay until someone retries them; history keeps the last
        `history_keep` messages per chat. Returns the number of events deleted.
        """
        cutoff = (now if now is not None else time.time()) - max(retention_s, MIN_RETENTION_S)
        deleted = 0
        with self._checkpoint_lock:
            conn = self._background()
            while (count := conn.execute(_PRUNE_EVENTS, (cutoff, batch)).rowcount) > 0:
                deleted += count
            while conn.execute(_PRUNE_STREAMS, (cutoff, batch)).rowcount > 0:
                pass
            crowded = conn.execute(
                "SELECT chat_id FROM history GROUP BY chat_id HAVING count(*) > ?",
                (history_keep,),
            ).fetchall()
            for (chat_id,) in crowded:
                conn.execute(
                    "DELETE FROM history WHERE chat_id = ? AND id <= (SELECT id FROM history"
                    " WHERE chat_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (chat_id, chat_id, history_keep),
                )
            conn.execute("UPDATE meta SET value = ? WHERE key = 'pruned_at'", (time.time(),))
            if deleted:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return deleted


def _dead_letters(conn: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT event_id, chat_key, event_type, attempts, last_error, created_at, updated_at"
        " FROM events WHERE status = 'dead' ORDER BY updated_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [DeadLetter(*row) for row in rows]


def mark_answered(path: Path, keys: list[tuple[str, str]]) -> int:
    """`Spool.mark_answered` on the spool file at `path` (created if missing), for a bot
    whose worker is not running; returns the number of pending rows settled."""
    spool = Spool(path)
    try:
        return spool.mark_answered(keys)
    finally:
        spool.close()


def read_answered(path: Path, since_epoch: float) -> list[tuple[str, str]]:
    """(event id, message id or "") of every event this spool marked done since `since_epoch`
    (epoch s), read-only: what a node publishes for the others when it hands a bot over."""
    if not path.exists():
        return []
    conn = _connect(path, readonly=True)
    try:
        return [(row[0], row[1]) for row in conn.execute(_ANSWERED_SINCE, (since_epoch,))]
    finally:
        conn.close()


def read_dead_letters(path: Path, limit: int = 100) -> list[DeadLetter]:
    """Dead letters read straight from a spool file (read-only), e.g. by the supervisor.

    A missing spool means the bot never received anything: no dead letters.
    """
    if not path.exists():
        return []
    conn = _connect(path, readonly=True)
    try:
        return _dead_letters(conn, limit)
    finally:
        conn.close()
