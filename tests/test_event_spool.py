"""The spool: dedup, per-chat order, crash safety, dead letters, pruning."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from worker.spool import (
    _PRUNE_EVENTS,
    DEAD,
    DONE,
    PENDING,
    Spool,
    StreamState,
    read_answered,
    read_dead_letters,
)

ROOT = Path(__file__).resolve().parents[1]


def test_duplicate_event_id_is_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    assert spool.add("e1", "c1", "im.message.receive_v1", b"{}")
    assert not spool.add("e1", "c1", "im.message.receive_v1", b"{other}")
    assert spool.get("e1").payload == b"{}"
    assert spool.counts() == {PENDING: 1}
    spool.close()


def test_same_message_under_a_new_event_id_is_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    assert spool.add("ev_a", "c1", "im.message.receive_v1", b"{}", "om_same")
    assert not spool.add("ev_b", "c1", "im.message.receive_v1", b"{}", "om_same")
    assert spool.add("ev_c", "c1", "im.chat.member.bot.added_v1", b"{}")
    assert spool.add("ev_d", "c1", "im.chat.member.bot.added_v1", b"{}"), "no message id"
    assert spool.counts() == {PENDING: 3}
    spool.close()


def test_events_answered_on_another_node_are_duplicates_here(tmp_path: Path) -> None:
    """Cluster mode: keys another node published make a redelivery a duplicate (same
    event id, or the same message under a new event id) and settle a pending copy."""
    spool = Spool(tmp_path / "spool.db")
    assert spool.add("ev_pending", "c1", "im.message.receive_v1", b"{}", "om_pending")
    settled = spool.mark_answered([("ev_a", "om_a"), ("ev_pending", "om_pending"),
                                   ("ev_card", "")])
    assert settled == 1 and spool.status("ev_pending") == DONE
    assert not spool.add("ev_a", "c1", "im.message.receive_v1", b"{}", "om_a")
    assert not spool.add("ev_new", "c1", "im.message.receive_v1", b"{}", "om_a")
    assert not spool.add("ev_card", "c1", "card.action.trigger", b"{}")
    assert spool.add("ev_fresh", "c1", "im.message.receive_v1", b"{}", "om_fresh")
    assert spool.counts() == {DONE: 3, PENDING: 1}
    spool.close()


def test_answered_events_are_kept_for_the_report_and_read_back(tmp_path: Path) -> None:
    """What a cluster node publishes: every row that becomes done, as it happens (the
    worker's report) and from the file (the handover), not what others answered."""
    spool = Spool(tmp_path / "spool.db")
    spool.answered = []
    woken: list[int] = []
    spool.on_answered = lambda: woken.append(len(spool.answered or []))
    since = time.time()
    spool.add("e1", "c1", "im.message.receive_v1", b"{}", "om_1")
    spool.add("e2", "c1", "im.message.receive_v1", b"{}")
    spool.complete("e1")
    spool.complete("e2", "c1", [("user", "hi")])
    spool.add_answered("card1", "card.action.trigger", b"{}")
    spool.mark_answered([("elsewhere", "om_x")])
    assert spool.answered == [("e1", "om_1"), ("e2", ""), ("card1", "")]
    assert woken == [1], "woken once, when the first key was kept"
    assert sorted(read_answered(tmp_path / "spool.db", since)) == [
        ("card1", ""), ("e1", "om_1"), ("e2", "")]
    assert read_answered(tmp_path / "spool.db", time.time() + 1) == []
    spool.close()


def test_a_spool_from_before_message_ids_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,"
        " chat_key TEXT NOT NULL, event_type TEXT NOT NULL, payload BLOB NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT,"
        " handled INTEGER NOT NULL DEFAULT 0, answer TEXT, created_at REAL NOT NULL,"
        " updated_at REAL NOT NULL);"
        " INSERT INTO events (event_id, chat_key, event_type, payload, created_at, updated_at)"
        " VALUES ('ev_old', 'c1', 'im.message.receive_v1', x'7b7d', 1, 1);")
    old.close()
    spool = Spool(path)
    assert [p.event_id for p in spool.pending()] == ["ev_old"]
    assert spool.add("ev_new", "c1", "im.message.receive_v1", b"{}", "om_1")
    assert not spool.add("ev_again", "c1", "im.message.receive_v1", b"{}", "om_1")
    spool.close()


def test_pending_lists_unfinished_events_in_arrival_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for event_id, chat in [("a1", "A"), ("b1", "B"), ("a2", "A"), ("b2", "B"), ("c1", "C")]:
        spool.add(event_id, chat, "t", b"{}")
    spool.complete("a1")
    spool.fail("b1", "boom", time.time() + 60)
    spool.fail("c1", "dead", None)
    pending = spool.pending()
    assert [(p.event_id, p.chat_key) for p in pending] == [("b1", "B"), ("a2", "A"), ("b2", "B")]
    assert pending[0].next_attempt_at > time.time()
    spool.close()


def test_dead_letter_and_revive(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.add("e1", "c1", "t", b"{}")
    spool.take("e1")
    spool.save_answer("e1", "cached")
    spool.fail("e1", "gave up", None)
    assert spool.status("e1") == DEAD
    [dead] = read_dead_letters(tmp_path / "spool.db")
    assert (dead.event_id, dead.attempts, dead.last_error) == ("e1", 1, "gave up")
    assert spool.revive("e1")
    assert not spool.revive("e1")
    row = spool.get("e1")
    assert (row.attempts, row.handled, row.answer) == (0, False, None)
    assert read_dead_letters(tmp_path / "missing.db") == []
    spool.close()


def test_take_counts_the_attempt_before_it_runs(tmp_path: Path) -> None:
    """A worker that dies inside the handler leaves the attempt counted, with a reason."""
    spool = Spool(tmp_path / "spool.db")
    spool.add("e1", "c1", "t", b"{}")
    assert spool.take("e1").attempts == 1
    spool.close()
    reopened = Spool(tmp_path / "spool.db")  # as after the worker died
    row = reopened.get("e1")
    assert (row.attempts, reopened.status("e1")) == (1, PENDING)
    assert reopened.take("e1").attempts == 2
    reopened.untake("e1")
    assert reopened.get("e1").attempts == 1, "a cancelled run gives its attempt back"
    reopened.fail("e1", "dead", None)
    assert reopened.take("e1") is None, "only pending rows are taken"
    [dead] = reopened.dead_letters()
    assert dead.attempts == 1
    reopened.close()


def test_prune_keeps_recent_done_rows_pending_and_dead(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for event_id in ("done", "pending", "dead"):
        spool.add(event_id, event_id, "t", b"{}")
    spool.complete("done", "chat", [("user", f"m{i}") for i in range(5)])
    spool.fail("dead", "x", None)
    assert spool.prune(retention_s=60, history_keep=3) == 0, "minimum retention is 8 h"
    assert spool.history("chat", 10) == [("user", "m2"), ("user", "m3"), ("user", "m4")]
    assert spool.prune(retention_s=60, history_keep=3, now=time.time() + 9 * 3600) == 1
    assert spool.status("done") is None
    assert (spool.status("pending"), spool.status("dead")) == (PENDING, DEAD)
    spool.add("done", "done", "t", b"{}")
    spool.complete("done")
    assert spool.status("done") == DONE
    spool.close()


def test_prune_deletes_in_batches_through_an_index(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for i in range(25):
        spool.add(f"e{i}", f"chat{i % 3}", "t", b"{}")
        spool.complete(f"e{i}", f"chat{i % 3}", [("user", f"m{i}")])
    spool.add("waiting", "chat0", "t", b"{}")
    later = time.time() + 9 * 3600
    assert spool.prune(retention_s=60, history_keep=2, now=later, batch=10) == 25
    assert spool.counts() == {PENDING: 1}
    assert [len(spool.history(f"chat{c}", 100)) for c in range(3)] == [2, 2, 2]
    assert spool.history("chat0", 100) == [("user", "m21"), ("user", "m24")]
    spool.close()
    conn = sqlite3.connect(tmp_path / "spool.db")
    plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {_PRUNE_EVENTS}",
                                                    (later, 10)))
    conn.close()
    assert "events_done_at" in plan, plan


_WRITER = """
import sys, time
from pathlib import Path
from worker.spool import Spool
spool = Spool(Path(sys.argv[1]))
for i in range(200):
    spool.add(f"e{i}", "c", "t", b"payload")
print("committed", flush=True)
time.sleep(60)
"""


def test_rows_survive_a_killed_writer(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "committed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    spool = Spool(path)
    assert spool.counts() == {PENDING: 200}
    assert spool.get("e199").payload == b"payload"
    spool.close()


def test_checkpoint_is_needed_only_after_a_write(tmp_path: Path) -> None:
    """An idle worker skips its once-a-second checkpoint (and the thread hop it costs)."""
    spool = Spool(tmp_path / "spool.db")
    assert not spool.written_since_checkpoint()
    spool.add("ev_1", "chat", "im.message.receive_v1", b"{}")
    assert spool.written_since_checkpoint()
    spool.checkpoint()
    assert not spool.written_since_checkpoint()
    spool.complete("ev_1")
    assert spool.written_since_checkpoint()
    spool.close()


def test_an_answered_callback_is_done_from_the_start_and_recognised_again(
    tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool.db")
    assert spool.add_answered("ev_card", "card.action.trigger", b"{}")
    assert not spool.add_answered("ev_card", "card.action.trigger", b"{}")
    assert not spool.add("ev_card", "c1", "card.action.trigger", b"{}")
    assert spool.status("ev_card") == DONE
    assert spool.counts() == {DONE: 1} and spool.pending() == []
    spool.close()


def test_the_answer_is_kept_until_the_event_is_revived(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    assert spool.answer_of("unknown") is None
    spool.add("e1", "c1", "t", b"{}")
    assert spool.answer_of("e1") == (False, None)
    spool.save_answer("e1", '["kept"]')
    assert spool.answer_of("e1") == (True, '["kept"]')
    taken = spool.take("e1")
    assert taken is not None and taken.handled and taken.answer == '["kept"]'
    spool.fail("e1", "reply refused", None)
    assert spool.status("e1") == DEAD
    assert spool.revive("e1")
    assert not spool.revive("e1"), "only a dead letter can be revived"
    assert spool.status("e1") == PENDING
    assert [(p.event_id, p.next_attempt_at) for p in spool.pending()] == [("e1", 0.0)]
    assert spool.answer_of("e1") == (False, None), "a revived event is handled afresh"
    again = spool.take("e1")
    assert again is not None and again.attempts == 1 and not again.handled
    assert (again.chat_key, again.event_type, again.payload) == ("c1", "t", b"{}")
    assert again.answer is None and again.created_at > 0
    spool.close()


def test_a_streamed_answer_remembers_its_card_and_final_text(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    assert spool.stream("e1") is None
    spool.stream_started("e1", "om_card")
    assert spool.stream("e1") == StreamState("om_card", None)
    spool.stream_finished("e1", "all of it")
    assert spool.stream("e1") == StreamState("om_card", "all of it")
    spool.close()
    reopened = Spool(tmp_path / "spool.db")
    assert reopened.stream("e1") == StreamState("om_card", "all of it")
    reopened.close()


def test_history_returns_the_last_turns_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.add("e1", "c1", "t", b"{}")
    spool.complete("e1", "oc_1", [("user", "q1"), ("assistant", "a1"), ("user", "q2")])
    assert spool.history("oc_1", 2) == [("assistant", "a1"), ("user", "q2")]
    assert spool.history("oc_1", 1) == [("user", "q2")]
    assert spool.history("oc_1", 0) == [] and spool.history("oc_other", 5) == []
    spool.close()


def last_error(tmp_path: Path, event_id: str) -> str | None:
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        return conn.execute("SELECT last_error FROM events WHERE event_id = ?",
                            (event_id,)).fetchone()[0]


def test_failures_keep_the_error_and_dead_letters_list_newest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    for event_id in ("old", "new", "alive"):
        spool.add(event_id, f"chat_{event_id}", "im.message.receive_v1", b"{}")
        spool.take(event_id)
    spool.fail("alive", "try later", time.time() + 60)
    spool.fail("old", "x" * 2000, None)
    spool.fail("new", "gave up", None)
    assert spool.status("alive") == PENDING and last_error(tmp_path, "alive") == "try later"
    letters = spool.dead_letters()
    assert [(d.event_id, d.chat_id, d.event_type, d.attempts) for d in letters] == [
        ("new", "chat_new", "im.message.receive_v1", 1),
        ("old", "chat_old", "im.message.receive_v1", 1)]
    assert letters[0].last_error == "gave up" and letters[1].last_error == "x" * 1000
    assert letters[0].created_at <= letters[0].updated_at
    assert [d.event_id for d in spool.dead_letters(limit=1)] == ["new"]
    assert [d.event_id for d in read_dead_letters(tmp_path / "spool.db", limit=1)] == ["new"]
    assert spool.counts() == {DEAD: 2, PENDING: 1}
    spool.complete("alive")
    assert last_error(tmp_path, "alive") is None, "done clears the last error"
    assert spool.counts() == {DEAD: 2, DONE: 1}
    spool.close()


def test_the_spool_is_wal_with_normal_sync_and_waits_for_locks(tmp_path: Path) -> None:
    """The durability the README states: WAL, synchronous=NORMAL (a killed process loses
    nothing committed); a busy database is waited for, not failed at once."""
    spool = Spool(tmp_path / "deep" / "er" / "spool.db")
    conn = spool._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1, "NORMAL"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.isolation_level is None, "autocommit: each statement commits at once"
    spool.close()


def test_dead_letters_are_read_without_writing_the_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.add("e1", "c1", "t", b"{}")
    spool.take("e1")
    spool.fail("e1", "gone", None)
    spool.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert [d.event_id for d in read_dead_letters(path)] == ["e1"]
    after = {p.name for p in tmp_path.iterdir()} - {"spool.db-wal", "spool.db-shm"}
    assert sorted(after) == before, "read-only: nothing but SQLite's WAL index created"
    assert read_dead_letters(tmp_path / "missing.db") == []
    assert not (tmp_path / "missing.db").exists()


def test_the_prune_stamp_is_now_for_a_new_spool_and_overdue_for_an_old_one(
        tmp_path: Path) -> None:
    """A new spool has nothing to prune: stamped now. A spool written before the stamp
    existed (rows, no stamp) is overdue; a prune stamps it."""
    path = tmp_path / "spool.db"
    spool = Spool(path)
    assert time.time() - 5 < spool.pruned_at() <= time.time()
    spool.add("ev_1", "oc_1", "im.message.receive_v1", b"{}")
    spool._conn.execute("DELETE FROM meta")  # as a spool from before the stamp
    spool.close()
    spool = Spool(path)
    assert spool.pruned_at() == 0.0
    spool.prune(retention_s=60, history_keep=3)
    assert time.time() - 5 < spool.pruned_at() <= time.time()
    spool.close()
