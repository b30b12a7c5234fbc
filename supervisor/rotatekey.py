"""`larkfleet rotate-key`: re-encrypt every stored secret under a new key, service running.

With the key in <data>/secret.key (the default):
1. a new key is generated and the file becomes "new, old" (atomically): every
   process reading it can open both, and a running service notices the change
   at its next seal or at the first value its loaded keys cannot open
   (store/secrets_box.py), so nothing stops;
2. every bot's secrets and the key canary are re-sealed under the new key,
   one short transaction per bot, twice (the second pass catches a write a
   running service sealed before it noticed the new file);
3. the file becomes "new" alone; the old key is kept in
   secret.key.retired-<UTC time> (0600) for backups taken before the rotation.

With LARKFLEET_SECRET_KEY it cannot edit the variable: set it to "NEW,OLD" on
every node (a rolling restart keeps the service up), run rotate-key, which
re-seals under NEW, then drop OLD from the variable.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet

from shared import exitcodes
from shared.paths import DataPaths
from store import open_store
from store.postgres import url
from store.secrets_box import SECRET_KEY_ENV, SecretKeyError, load_keys, write_keys


def rotate(paths: DataPaths, database_url: str | None, from_env: bool) -> str:
    """Do the rotation; returns a one-line summary. Raises SecretKeyError."""
    if from_env:
        keys = load_keys(paths.secret_key)
        if len(keys) < 2:
            new = Fernet.generate_key().decode()
            raise SecretKeyError(
                f"{SECRET_KEY_ENV} holds one key: set it to '<new>,<old>' on every node first"
                f" (a new key: {new}), then run rotate-key again")
        store = open_store(paths, database_url, bootstrap=False)
        try:
            count = store.reseal_secrets()
            count = store.reseal_secrets()
        finally:
            store.close()
        return (f"re-encrypted the secrets of {count} bot(s) under the first key of"
                f" {SECRET_KEY_ENV}; now remove the old key from it")
    key_file = paths.secret_key
    old = load_keys(key_file)
    open_store(paths, database_url, bootstrap=False).close()  # the old key opens the registry
    new = Fernet.generate_key()
    write_keys(key_file, [new, *old])
    store = open_store(paths, database_url, bootstrap=False)
    try:
        store.reseal_secrets()
        count = store.reseal_secrets()
    finally:
        store.close()
    retired = key_file.with_name(
        f"{key_file.name}.retired-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    write_keys(retired, old)
    write_keys(key_file, [new])
    return (f"re-encrypted the secrets of {count} bot(s) under a new key in {key_file};"
            f" the old key is kept in {retired.name} for older backups")


def main(args: argparse.Namespace) -> int:
    """One line on success (stdout) or failure (stderr); exit 0, or SERVE_SECRET_KEY."""
    paths = DataPaths(Path(args.data_dir).resolve())
    if args.database_url:
        try:
            url.check(args.database_url)
        except url.DatabaseUrlError as error:
            print(f"larkfleet rotate-key: {error}", file=sys.stderr)
            return exitcodes.SERVE_CONFIG
    elif not paths.registry.exists():
        print(f"larkfleet rotate-key: no registry in {paths.root}", file=sys.stderr)
        return exitcodes.SERVE_CONFIG
    from_env = bool(os.environ.get(SECRET_KEY_ENV, "").strip())
    try:
        print(rotate(paths, args.database_url, from_env))
    except SecretKeyError as error:
        print(f"larkfleet rotate-key: {error}", file=sys.stderr)
        return exitcodes.SERVE_SECRET_KEY
    except OSError as error:  # the key file (a cluster node's data dir may lack it)
        print(f"larkfleet rotate-key: secret key file: {error.strerror}: {error.filename}"
              f" ({SECRET_KEY_ENV} or <data-dir>/secret.key)", file=sys.stderr)
        return exitcodes.SERVE_SECRET_KEY
    except psycopg.Error as error:
        print(f"larkfleet rotate-key: database {url.masked(args.database_url or '')}:"
              f" {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return exitcodes.SERVE_DATABASE
    return exitcodes.SERVE_OK

