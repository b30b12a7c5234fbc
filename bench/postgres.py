"""A throwaway PostgreSQL cluster for the cluster-mode tests and bench: real server, temp dir.

`make test` installs Debian's `postgresql` when missing (tests/postgres/
ensure-postgresql.sh); here initdb and pg_ctl run it in a temp directory as a
non-root user (PostgreSQL refuses to run as root), on a free loopback port with
password (scram) auth, so the URL the nodes get carries a password to mask.
It ships with the bench (which measures cluster mode), so it imports nothing
from `tests/`; tests/fixtures/postgres.py turns it into fixtures.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.service import free_port

SUPERUSER = "larkfleet"
_databases = itertools.count(1)


def server_bin_dir() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres: PATH first, else Debian's newest."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _run_as() -> str | None:
    """The unprivileged user that owns the cluster when the tests run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None


class PgServer:
    """One PostgreSQL cluster: start(), url(db), create_database(), stop()."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="lfpg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.password = "pw-" + secrets.token_hex(8)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return [*prefix, *args]

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._command(*args), capture_output=True, text=True,
                                timeout=60, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> PgServer:
        """initdb on first start, then pg_ctl start; returns once it accepts connections."""
        if not self.data.exists():
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                      "--pwfile", str(pwfile), "--auth-local=trust",
                      "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
                      "--no-instructions")
            pwfile.unlink()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.root}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 200\nshared_buffers = 32MB\n"
                )
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-w", "-t", "30", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop (`immediate` drops every connection at once, as a crash would)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode,
                      "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return (f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}")

    def create_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = f"lf_test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
