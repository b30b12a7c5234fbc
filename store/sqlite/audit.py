"""The audit log's table: one row per change made through the API (shared SQL for both engines).

Rows carry ids, names, routes and outcomes only; the API never hands a
request body here, so no secret can reach the table.
"""

from store.records import AuditEntry
from store.sqlite.connection import Database


class AuditTable:
    """The audit half of a store (see store.interface.Store for the contract)."""

    db: Database

    def record_audit(self, at: float, actor: str, action: str, target: str, outcome: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO audit (at, actor, action, target, outcome) VALUES (?, ?, ?, ?, ?)",
                (at, actor, action, target, outcome),
            )

    def audit_entries(self, limit: int, before: int | None = None) -> list[AuditEntry]:
        if before is None:
            rows = self.db.query(
                "SELECT id, at, actor, action, target, outcome FROM audit"
                " ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.db.query(
                "SELECT id, at, actor, action, target, outcome FROM audit WHERE id < ?"
                " ORDER BY id DESC LIMIT ?", (before, limit))
        return [AuditEntry(*row) for row in rows]
