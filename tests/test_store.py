"""The registry on real SQLite and real PostgreSQL: schema, secrets at rest, users, bots.

Every behaviour test runs against both engines (the `engine` fixture); the
file-mode tests are SQLite's alone.
"""

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shared.botconfig import BotConfig, BotOptions, ForwardHandler, OpenAIHandler
from shared.logs import MASK, redactor
from shared.paths import DataPaths
from store import Conflict, NotFound, SQLiteStore, Store, open_store
from store.postgres import MIGRATIONS as PG_MIGRATIONS
from store.secrets_box import SecretKeyError
from store.sqlite import MIGRATIONS

SECRETS = ("s3cret-app-value", "verif-token-value", "encrypt-key-value", "hmac-secret-value")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LARKFLEET_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("LARKFLEET_SECRET_KEY", raising=False)


@pytest.fixture
def paths(tmp_path: Path) -> DataPaths:
    return DataPaths(tmp_path / "data")


class Engine:
    """One store engine under test: how to open it and how to read its raw bytes."""

    def __init__(self, name: str, url: str | None) -> None:
        self.name = name
        self.url = url
        self.migrations = PG_MIGRATIONS if url else MIGRATIONS

    def open(self, paths: DataPaths) -> Store:
        return open_store(paths, self.url)

    def stored(self, paths: DataPaths) -> bytes:
        """Everything the database holds, as bytes: secrets must not be in there."""
        if self.url is None:
            return b"".join(p.read_bytes() for p in paths.root.glob("larkfleet.db*"))
        import psycopg

        with psycopg.connect(self.url) as conn:
            rows = [conn.execute(f"SELECT t::text FROM {table} t").fetchall()
                    for table in ("users", "tokens", "bots", "meta")]
        return repr(rows).encode()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Engine:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return Engine(request.param, url)


def config(app_id: str = "cli_1", **fields) -> BotConfig:
    values = {
        "id": "",
        "name": "bot",
        "app_id": app_id,
        "app_secret": SECRETS[0],
        "verification_token": SECRETS[1],
        "encrypt_key": SECRETS[2],
        "handler": ForwardHandler(url="http://127.0.0.1:9/", secret=SECRETS[3]),
        **fields,
    }
    return BotConfig(**values)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_migrations_are_idempotent_and_keep_data(paths: DataPaths, engine: Engine) -> None:
    registry = engine.open(paths)
    assert registry.schema_version() == len(engine.migrations)
    admin = registry.list_users()[0]
    bot = registry.create_bot(admin.id, config())
    assert registry.migrate() == len(engine.migrations)
    registry.close()

    again = engine.open(paths)
    assert again.schema_version() == len(engine.migrations)
    assert [u.id for u in again.list_users()] == [admin.id]
    assert again.bot_config(bot.config.id).app_secret == SECRETS[0]
    again.close()


def test_secrets_are_encrypted_at_rest_and_decrypted_for_the_worker(
    paths: DataPaths, engine: Engine
) -> None:
    registry = engine.open(paths)
    owner = registry.list_users()[0].id
    handler = OpenAIHandler(base_url="http://llm", model="m", api_key="sk-openai-key-value")
    options = BotOptions(answer_at_all=True, proxy="http://u:proxy-password-1@proxy:3128")
    first = registry.create_bot(owner, config()).config.id
    second = registry.create_bot(owner, config("cli_2", handler=handler,
                                               options=options)).config.id
    registry.close()

    stored = engine.stored(paths)
    for secret in (*SECRETS, "sk-openai-key-value", "proxy-password-1"):
        assert secret.encode() not in stored
    assert mode(paths.secret_key) == 0o600

    registry = engine.open(paths)
    restored = registry.bot_config(first)
    assert (restored.app_secret, restored.verification_token, restored.encrypt_key) == SECRETS[:3]
    assert restored.handler == ForwardHandler(url="http://127.0.0.1:9/", secret=SECRETS[3])
    assert registry.bot_config(second).handler == handler
    assert registry.bot_config(second).options == options
    assert registry.bot_config(first).options == BotOptions()
    registry.close()


def test_a_different_key_is_refused_at_start(paths: DataPaths, engine: Engine, monkeypatch) -> None:
    engine.open(paths).close()
    monkeypatch.setenv("LARKFLEET_SECRET_KEY", Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError):
        engine.open(paths)
    monkeypatch.setenv("LARKFLEET_SECRET_KEY", "not-a-key")
    with pytest.raises(SecretKeyError):
        engine.open(paths)


def test_admin_token_file_is_private_and_stable(paths: DataPaths, engine: Engine) -> None:
    registry = engine.open(paths)
    token = paths.admin_token.read_text().strip()
    assert mode(paths.admin_token) == 0o600
    user = registry.user_for_token(token)
    assert user is not None and user.is_admin
    registry.close()

    registry = engine.open(paths)
    assert paths.admin_token.read_text().strip() == token
    assert len(registry.list_users()) == 1
    registry.revoke_token(token)
    registry.close()

    registry = engine.open(paths)
    renewed = paths.admin_token.read_text().strip()
    assert renewed != token
    assert registry.user_for_token(token) is None
    assert registry.user_for_token(renewed).is_admin
    registry.close()


def test_admin_token_from_environment(paths: DataPaths, engine: Engine, monkeypatch) -> None:
    monkeypatch.setenv("LARKFLEET_ADMIN_TOKEN", "env-admin-token-1")
    registry = engine.open(paths)
    assert not paths.admin_token.exists()
    assert registry.user_for_token("env-admin-token-1").is_admin
    registry.close()
    assert b"env-admin-token-1" not in engine.stored(paths)

    monkeypatch.setenv("LARKFLEET_ADMIN_TOKEN", "env-admin-token-2")
    registry = engine.open(paths)
    assert registry.user_for_token("env-admin-token-1") is None
    assert registry.user_for_token("env-admin-token-2").is_admin
    registry.close()


def test_users_tokens_revoke_and_delete(paths: DataPaths, engine: Engine) -> None:
    registry = engine.open(paths)
    user, token = registry.create_user("alice")
    assert registry.user_for_token(token) == user
    assert registry.user_for_token(token + "x") is None
    second = registry.issue_token(user.id)
    assert registry.revoke_tokens(user.id) == 2
    assert registry.user_for_token(token) is None
    assert registry.user_for_token(second) is None

    bot = registry.create_bot(user.id, config())
    with pytest.raises(Conflict):
        registry.delete_user(user.id)
    registry.delete_bot(bot.config.id, user.id)
    registry.delete_user(user.id)
    with pytest.raises(NotFound):
        registry.get_user(user.id)
    admin = registry.list_users()[0]
    with pytest.raises(Conflict):
        registry.delete_user(admin.id)
    registry.close()


def test_bots_are_owner_scoped_and_app_ids_unique_unless_shared(
    paths: DataPaths, engine: Engine
) -> None:
    registry = engine.open(paths)
    alice = registry.create_user("alice")[0].id
    bob = registry.create_user("bob")[0].id
    mine = registry.create_bot(alice, config()).config.id
    with pytest.raises(Conflict):
        registry.create_bot(alice, config())
    with pytest.raises(Conflict, match=r"\$\.appId"):
        registry.create_bot(bob, config())
    assert registry.set_shared(mine, True).shared is True
    registry.create_bot(bob, config())
    assert [b.config.id for b in registry.list_bots(alice)] == [mine]
    assert len(registry.list_bots(None)) == 2
    with pytest.raises(NotFound):
        registry.get_bot(mine, bob)
    with pytest.raises(NotFound):
        registry.update_bot(mine, bob, name="stolen")
    with pytest.raises(NotFound):
        registry.delete_bot(mine, bob)
    updated = registry.update_bot(mine, alice, name="renamed", use_websocket=False)
    assert updated.config.name == "renamed"
    assert updated.config.app_secret == SECRETS[0]
    other = registry.create_bot(alice, config("cli_other")).config.id
    with pytest.raises(Conflict):
        registry.update_bot(other, alice, app_id="cli_1")
    registry.close()


def test_desired_bots_are_connected_wishes_and_webhook_bots(
    paths: DataPaths, engine: Engine
) -> None:
    registry = engine.open(paths)
    owner = registry.list_users()[0].id
    ws_idle = registry.create_bot(owner, config("a")).config.id
    ws_wanted = registry.create_bot(owner, config("b")).config.id
    webhook = registry.create_bot(owner, config("c", use_websocket=False)).config.id
    registry.set_desired_connected(ws_wanted, True)
    assert set(registry.desired_bots()) == {ws_wanted, webhook}
    assert [registry.is_desired(b) for b in (ws_idle, ws_wanted, webhook)] == [False, True, True]
    registry.set_desired_connected(ws_wanted, False)
    assert registry.desired_bots() == [webhook]
    assert ws_idle not in registry.desired_bots()
    assert not registry.is_desired(ws_wanted) and not registry.is_desired("bot_missing")
    with pytest.raises(NotFound):
        registry.set_desired_connected("bot_missing", True)
    registry.close()


def test_registry_file_is_not_world_readable(paths: DataPaths) -> None:
    SQLiteStore(paths).close()
    assert mode(paths.registry) & 0o077 == 0
    assert os.access(paths.registry, os.R_OK)


def test_secrets_and_tokens_are_registered_with_the_log_redactor(
    paths: DataPaths, engine: Engine
) -> None:
    registry = engine.open(paths)
    user, token = registry.create_user("alice")
    registry.create_bot(user.id, config())
    line = f"oops {token} {' '.join(SECRETS)}"
    assert redactor.redact(line) == "oops " + " ".join([MASK] * 5)
    registry.close()


def test_the_log_redactor_forgets_changed_and_deleted_secrets(
    paths: DataPaths, engine: Engine
) -> None:
    """The redactor's set is rebuilt on change: it follows the store instead of growing."""
    registry = engine.open(paths)
    user, token = registry.create_user("alice")
    old, new = f"old-app-secret-{engine.name}", f"new-app-secret-{engine.name}"
    record = registry.create_bot(user.id, config(app_secret=old, encrypt_key=""))
    assert {token, old} <= redactor.secrets()
    registry.update_bot(record.config.id, None, app_secret=new)
    assert new in redactor.secrets()
    assert old not in redactor.secrets(), "the replaced secret is forgotten"
    registry.delete_bot(record.config.id)
    assert new not in redactor.secrets()
    assert registry.revoke_token(token)
    assert token not in redactor.secrets()
    registry.close()


@pytest.mark.parametrize("implementation", ["sqlite", "postgres"])
def test_each_store_implements_every_operation_of_the_interface(implementation: str) -> None:
    """Every engine is written against store.Store: each must offer exactly those calls."""
    import inspect

    from store.postgres import PostgresStore

    engine_class = SQLiteStore if implementation == "sqlite" else PostgresStore

    wanted = {n for n, v in vars(Store).items() if callable(v) and not n.startswith("_")}
    for name in wanted:
        assert inspect.signature(getattr(engine_class, name)) == inspect.signature(
            getattr(Store, name)
        ), name
