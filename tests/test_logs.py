"""The log redactor: per-owner secrets, rebuilt on change, one pass per record."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.logs import MASK, SecretRedactor


def test_set_replaces_an_owners_secrets_and_drop_forgets_them() -> None:
    redactor = SecretRedactor()
    redactor.add("admin-token-value")
    redactor.set("bot:1", "old-secret-value", "ab")
    redactor.set("bot:1", "new-secret-value")
    line = "admin-token-value old-secret-value new-secret-value ab"
    assert redactor.redact(line) == f"{MASK} old-secret-value {MASK} ab"
    redactor.drop("bot:1")
    assert redactor.secrets() == {"admin-token-value"}
    assert redactor.redact("new-secret-value token=abc") == f"new-secret-value token={MASK}"


def test_a_secret_inside_another_is_masked_whole() -> None:
    redactor = SecretRedactor()
    redactor.set("bot:1", "secret-value")
    redactor.set("bot:2", "my-secret-value-long")
    assert redactor.redact("x my-secret-value-long y secret-value") == f"x {MASK} y {MASK}"


@settings(max_examples=300, deadline=None)
@given(secrets=st.sets(st.text("abc-", min_size=4, max_size=8), max_size=5),
       text=st.text("abc- x", max_size=40))
def test_masking_is_leftmost_longest_like_one_alternation_of_every_secret(
    secrets: set[str], text: str
) -> None:
    """The automaton masks exactly what one regex of every secret, longest first, masks."""
    redactor = SecretRedactor()
    redactor.set("bot:1", *secrets)
    ordered = sorted(secrets, key=len, reverse=True)
    expected = re.sub("|".join(map(re.escape, ordered)), MASK, text) if ordered else text
    assert redactor.redact(text) == expected
