"""Where everything lives under the data directory (architecture.md, "Files")."""

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class DataPaths:
    """All paths under one data directory, so no module builds its own."""

    root: Path

    @property
    def registry(self) -> Path:
        return self.root / "larkfleet.db"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def secret_key(self) -> Path:
        return self.root / "secret.key"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def liveness_board(self) -> Path:
        """The shared liveness counters of the supervisor and its workers."""
        return self.run_dir / "liveness"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "ctl.sock"

    @property
    def control_endpoint(self) -> str:
        return f"ipc://{self.control_socket}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "larkfleet.pid"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor_log(self) -> Path:
        return self.logs_dir / "supervisor.log"

    def bot_log(self, bot_id: str) -> Path:
        return self.logs_dir / f"{bot_id}.log"

    def bot_dir(self, bot_id: str) -> Path:
        return self.root / "bots" / bot_id

    def spool(self, bot_id: str) -> Path:
        return self.bot_dir(bot_id) / "spool.db"

    def remove_bot_files(self, bot_id: str) -> None:
        """Delete the bot's spool folder and its log with every rotated copy.

        Called once the bot's worker is gone, when the bot is deleted: nothing
        of a deleted bot stays on disk (its events and replies included).
        """
        shutil.rmtree(self.bot_dir(bot_id), ignore_errors=True)
        log = self.bot_log(bot_id)
        for path in (log, *log.parent.glob(f"{log.name}.*")):
            path.unlink(missing_ok=True)

    def ensure(self) -> None:
        """Create the directories, each 0700: message data and secrets are the service's own."""
        self.root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        for directory in (self.root, self.logs_dir, self.root / "bots", self.run_dir):
            directory.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            directory.chmod(PRIVATE_DIR)

    def make_private(self) -> int:
        """Take group and other access off everything under the root; returns how many changed.

        Files an older version or another umask left readable (spools, logs,
        the registry) are fixed at start; symlinks are not followed. What the
        process creates afterwards is private through its umask (serve.py).
        """
        changed = 0
        for top, dirs, files in os.walk(self.root):
            for name in [*dirs, *files]:
                path = os.path.join(top, name)
                try:
                    mode = os.lstat(path).st_mode
                except FileNotFoundError:
                    continue
                if stat.S_ISLNK(mode) or not mode & 0o077:
                    continue
                os.chmod(path, PRIVATE_DIR if stat.S_ISDIR(mode) else stat.S_IMODE(mode) & 0o700)
                changed += 1
        if changed:
            logger.warning("made %d file(s) under %s private to the service user",
                           changed, self.root)
        return changed
