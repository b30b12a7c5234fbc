"""Refusing a weak LARKFLEET_ADMIN_TOKEN before the service starts.

The admin token opens every bot and every secret-bearing action of the
service, and a copied example file or a short memorable value is the usual
way such a token ends up guessable. So an operator-chosen token must be at
least MIN_LENGTH characters, not a known placeholder and not made of a
handful of repeated characters. The generated token (<data>/admin.token) is
43 random url-safe characters and is never judged.
"""

import re

MIN_LENGTH = 32

PLACEHOLDERS = frozenset({
    "changeme", "replacewithalongrandomtoken", "replaceme", "password", "secret",
    "admin", "token", "example", "test", "default", "larkfleet",
})
"""Known placeholder values, compared lowercased without separators (so `change-me`,
`CHANGE_ME` and the Kubernetes template's `REPLACE-WITH-A-LONG-RANDOM-TOKEN` all match)."""

_PLACEHOLDER_PARTS = ("changeme", "replacewith", "yourtoken", "putyour")
MIN_DISTINCT = 8


def weakness(token: str) -> str | None:
    """Why `token` is too weak to be the admin token, or None when it is acceptable."""
    folded = re.sub(r"[^a-z0-9]", "", token.lower())
    if folded in PLACEHOLDERS or any(part in folded for part in _PLACEHOLDER_PARTS):
        return "is a placeholder value"
    if len(token) < MIN_LENGTH:
        return f"is {len(token)} characters; at least {MIN_LENGTH} are needed"
    if len(set(token)) < MIN_DISTINCT:
        return f"uses fewer than {MIN_DISTINCT} distinct characters"
    return None
